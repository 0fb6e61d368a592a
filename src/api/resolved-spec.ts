import { validateSpec, type ValidationResult } from './crd-schema.js';
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
