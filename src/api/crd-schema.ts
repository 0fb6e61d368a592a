import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { parse } from 'yaml';
import { CRD_FILE, VERSION } from './constants.js';
import type { PullStatePolicySpec } from './generated/pullstatepolicy.js';
import { projectFile } from './project-files.js';
import { requestPath } from '../runtime/request-path.js';

/** The subset of an OpenAPI v3 schema node the operator reads to explain a rule to a user. */
export interface SchemaNode {
  type?: string;
  description?: string;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  default?: unknown;
  properties?: Record<string, SchemaNode>;
  [key: string]: unknown;
}

interface CrdDocument {
  spec: { versions: { name: string; schema: { openAPIV3Schema: SchemaNode } }[] };
}

function loadOpenApiSchema(): SchemaNode {
  const crd = parse(readFileSync(projectFile(CRD_FILE), 'utf8')) as CrdDocument;
  const version = crd.spec.versions.find((v) => v.name === VERSION);
  if (!version) throw new Error(`${CRD_FILE} has no version ${VERSION}`);
  return version.schema.openAPIV3Schema;
}

/** The CRD's openAPIV3Schema, read once from crds/ so ajv and the API server enforce the same rules. */
export const openApiSchema: SchemaNode = loadOpenApiSchema();
export const specSchema: SchemaNode = openApiSchema.properties!.spec!;

function newAjv(): Ajv {
  // useDefaults fills the CRD's defaults in, as the API server does on admission.
  const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, strictRequired: false });
  // Kubernetes extensions are instructions for the API server (CEL rules, list semantics); the API
  // server evaluates them, ajv only has to accept them.
  for (const keyword of [
    'x-kubernetes-validations',
    'x-kubernetes-list-type',
    'x-kubernetes-list-map-keys',
    'x-kubernetes-map-type',
    'x-kubernetes-preserve-unknown-fields',
    'x-kubernetes-embedded-resource',
  ]) {
    ajv.addKeyword({ keyword, schemaType: ['array', 'string', 'boolean', 'object'] });
  }
  ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isSafeInteger(n) });
  ajv.addFormat('date-time', {
    type: 'string',
    validate: (s: string) =>
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(s) && !isNaN(Date.parse(s)),
  });
  return ajv;
}

const ajv = newAjv();
const validateSpecFn: ValidateFunction = ajv.compile(specSchema);
const validateStatusFn: ValidateFunction = ajv.compile(openApiSchema.properties!.status!);

export type ValidationResult<T> = { ok: true; value: T } | { ok: false; errors: string[] };

/** Turns ajv's errors into sentences that name the field, what was wrong and what is allowed. */
export function describeErrors(errors: ErrorObject[] | null | undefined, root: string): string[] {
  return (errors ?? []).map((e) => {
    const field = root + e.instancePath.replace(/\//g, '.');
    switch (e.keyword) {
      case 'required':
        return `${field}.${String(e.params.missingProperty)} is required`;
      case 'enum':
        return `${field} must be one of: ${(e.params.allowedValues as unknown[]).join(', ')}`;
      case 'additionalProperties':
        return `${field}.${String(e.params.additionalProperty)} is not a known field`;
      case 'pattern':
        return `${field} must match ${String(e.params.pattern)}`;
      default:
        return `${field} ${e.message ?? 'is invalid'}`;
    }
  });
}

/**
 * Validates a PullStatePolicy spec against the CRD schema and returns a copy with the CRD defaults
 * applied. Cross-field CEL rules (x-kubernetes-validations) are enforced by the API server, not here.
 */
export function validateSpec(input: unknown): ValidationResult<PullStatePolicySpec> {
  const copy: unknown = structuredClone(input);
  const errors = validateSpecFn(copy) ? [] : describeErrors(validateSpecFn.errors, 'spec');
  errors.push(...pathErrors(copy));
  if (errors.length === 0) return { ok: true, value: copy as PullStatePolicySpec };
  return { ok: false, errors };
}

/**
 * The CRD's pattern admits control characters in a path, which no request can carry: the policy is refused
 * here, with a reason, instead of failing at every pull and restore on the helpers.
 */
function pathErrors(spec: unknown): string[] {
  if (typeof spec !== 'object' || spec === null) return [];
  return (['path', 'restorePath'] as const).flatMap((field) => {
    const value = (spec as Record<string, unknown>)[field];
    // Not a string, or not starting with '/': the schema's own errors say so.
    if (typeof value !== 'string' || !value.startsWith('/')) return [];
    const r = requestPath(value);
    return r.ok ? [] : [`spec.${field} ${r.reason}`];
  });
}

/** Validates a status before it is written, so a controller bug surfaces as an error, not a 422 loop. */
export function validateStatus(input: unknown): ValidationResult<unknown> {
  if (validateStatusFn(input)) return { ok: true, value: input };
  return { ok: false, errors: describeErrors(validateStatusFn.errors, 'status') };
}
