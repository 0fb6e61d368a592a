import { specSchema, validateSpec, type ValidationResult } from './crd-schema.js';
import type { PullStatePolicySpec } from './generated/pullstatepolicy.js';

type Filled<T> = { [K in keyof T]-?: NonNullable<T[K]> };

/** A spec with every default resolved, including the two the CRD cannot express (they depend on others). */
export type ResolvedSpec = Filled<Omit<PullStatePolicySpec, 'failover' | 'container'>> & {
  failover: Filled<NonNullable<PullStatePolicySpec['failover']>>;
  /** No default: unset, the app container is found from the Pod (see appContainer). */
  container?: string;
};

/** Cap of the timeoutSeconds default: a pull must finish before the next is due, and within 5 s. */
export const MAX_DEFAULT_TIMEOUT_SECONDS = 5;

/**
 * Longest wait for an app's answer to a restore push, and so the largest `timeoutMs` the helper accepts: the
 * CRD's largest timeoutSeconds. Derived from the CRD so a spec the API server admits can never ask the helper
 * for more than it takes (a refusal there would retry forever and keep the Pod's gate closed).
 */
export const MAX_RESTORE_TIMEOUT_MS = (specSchema.properties!.timeoutSeconds!.maximum ?? 3600) * 1000;

/**
 * A restore waits at least this long for the app's answer, whatever the pull timeout: an app that just
 * started on a busy node may take seconds to answer, and a push given up after its body was sent leaves it
 * unknown whether the state arrived, so the retry could restore it twice.
 */
export const MIN_RESTORE_ANSWER_MS = 30_000;

/** How long a restore push waits for the app's answer under this spec. */
export function restoreTimeoutMs(spec: Pick<ResolvedSpec, 'timeoutSeconds'>): number {
  return Math.min(MAX_RESTORE_TIMEOUT_MS, Math.max(spec.timeoutSeconds * 1000, MIN_RESTORE_ANSWER_MS));
}

/**
 * Validates a spec against the CRD schema and resolves every default: the CRD's own (filled by ajv from the
 * schema, so they are never written twice) plus restorePath (= path) and timeoutSeconds
 * (= min(intervalSeconds, 5)).
 */
export function parseSpec(input: unknown): ValidationResult<ResolvedSpec> {
  const result = validateSpec(input);
  if (!result.ok) return result;
  const spec = result.value as ResolvedSpec;
  return {
    ok: true,
    value: {
      ...spec,
      restorePath: spec.restorePath ?? spec.path,
      timeoutSeconds: spec.timeoutSeconds ?? Math.min(MAX_DEFAULT_TIMEOUT_SECONDS, spec.intervalSeconds),
    },
  };
}
