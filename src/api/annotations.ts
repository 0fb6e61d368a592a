import { ANNOTATION_PREFIX, ANNOTATIONS, type AnnotationName } from './constants.js';
import { specSchema, validateSpec, type SchemaNode } from './crd-schema.js';
import type { PullStatePolicySpec } from './generated/pullstatepolicy.js';
import { quoted } from '../runtime/request-path.js';

/** A rejected annotation: which one, the value it had, and why (including what is allowed). */
export interface AnnotationProblem {
  annotation: string;
  value: string | undefined;
  message: string;
}

export type AnnotationMapping =
  /** The workload carries no hitachienergy.com/ps_* annotation: it is not protected. */
  | { kind: 'absent' }
  | { kind: 'invalid'; problems: AnnotationProblem[]; warnings: string[] }
  | { kind: 'valid'; spec: PullStatePolicySpec; warnings: string[] };

/** Which spec field each annotation sets. */
const FIELDS: Record<AnnotationName, 'mode' | 'intervalSeconds' | 'path' | 'port'> = {
  mode: 'mode',
  interval: 'intervalSeconds',
  path: 'path',
  port: 'port',
};

/** What a field accepts, in words, derived from the CRD schema so the text cannot drift from the rule. */
export function allowedValues(field: string): string {
  const node: SchemaNode | undefined = specSchema.properties?.[field];
  if (!node) return 'nothing (unknown field)';
  if (node.enum) return `one of ${node.enum.join(', ')}`;
  if (node.type === 'integer') return `a whole number from ${node.minimum} to ${node.maximum}`;
  if (node.pattern?.startsWith('^/'))
    return `a path that starts with / (for example ${String(node.default)})`;
  return node.description ?? node.type ?? 'a valid value';
}

const WHOLE_NUMBER = /^\d+$/;

function parseValue(name: AnnotationName, raw: string): { value?: string | number; problem?: string } {
  const field = FIELDS[name];
  if (raw.trim() === '') return { problem: `is empty; allowed: ${allowedValues(field)}` };
  if (specSchema.properties?.[field]?.type !== 'integer') return { value: raw };
  if (!WHOLE_NUMBER.test(raw)) {
    const hint =
      name === 'port' && /^[a-z]/i.test(raw) ? ' (named ports are not supported: use the number)' : '';
    return { problem: `is not a whole number${hint}; allowed: ${allowedValues(field)}` };
  }
  return { value: Number(raw) };
}

/**
 * Maps the original prototype's annotations on a Deployment or StatefulSet to a PullStatePolicy spec.
 * `ps_mode` opts the workload in and is required; the other three fall back to the CRD defaults. Values are
 * checked by the same CRD schema the API server enforces. Unknown ps_* keys are warnings: an older or newer
 * prototype may have set them and they must not take protection away.
 */
export function mapAnnotations(
  annotations: Record<string, string> | undefined,
  selector: PullStatePolicySpec['selector'],
): AnnotationMapping {
  const own = Object.entries(annotations ?? {}).filter(([k]) => k.startsWith(ANNOTATION_PREFIX));
  if (own.length === 0) return { kind: 'absent' };

  const known = new Map<string, AnnotationName>(
    Object.entries(ANNOTATIONS).map(([name, key]) => [key, name as AnnotationName]),
  );
  const warnings = own
    .filter(([k]) => !known.has(k))
    .map(
      ([k]) =>
        `unknown annotation ${k} is ignored; known annotations: ${Object.values(ANNOTATIONS).join(', ')}`,
    );

  const problems: AnnotationProblem[] = [];
  const candidate: Record<string, unknown> = { selector };
  for (const [key, name] of known) {
    const raw = annotations?.[key];
    if (raw === undefined) {
      if (name === 'mode') {
        problems.push({
          annotation: key,
          value: undefined,
          message: `is missing; it opts the workload in and must be ${allowedValues('mode')}`,
        });
      }
      continue;
    }
    const parsed = parseValue(name, raw);
    if (parsed.problem) problems.push({ annotation: key, value: raw, message: parsed.problem });
    else candidate[FIELDS[name]] = parsed.value;
  }

  // Fields that failed to parse are left out of the candidate (it falls back to defaults there), so the
  // schema reports only the remaining annotations and every bad one is named in a single pass.
  const result = validateSpec(candidate);
  if (result.ok && problems.length === 0) return { kind: 'valid', spec: result.value, warnings };
  if (!result.ok) {
    // Map each schema error back to the annotation that supplied the field.
    for (const error of result.errors) {
      const entry = Object.entries(FIELDS).find(([, field]) => error.startsWith(`spec.${field} `));
      if (!entry) {
        problems.push({ annotation: 'spec.selector', value: undefined, message: error });
        continue;
      }
      const [name, field] = entry as [AnnotationName, string];
      const key = ANNOTATIONS[name];
      problems.push({
        annotation: key,
        value: annotations?.[key],
        message: `${error.slice(`spec.${field} `.length)}; allowed: ${allowedValues(field)}`,
      });
    }
  }
  return { kind: 'invalid', problems, warnings };
}

/** One line per problem, for Events and conditions: `hitachienergy.com/ps_port="http" is not ...`. */
export function formatProblems(problems: AnnotationProblem[]): string {
  return problems
    .map((p) =>
      // The value is the tenant's: quoted and escaped, so it cannot break the line of an Event or a log.
      p.value === undefined
        ? `${p.annotation} ${p.message}`
        : `${p.annotation}=${quoted(p.value, 256)} ${p.message}`,
    )
    .join('; ');
}
