import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ApiException, CustomObjectsApi } from '@kubernetes/client-node';
import { API_VERSION, CRD_FILE, GROUP, KIND, PLURAL, VERSION, parseSpec } from '../../src/api/index.js';
import { createNamespace, eventually, kc } from './cluster.js';

const run = promisify(execFile);
const ns = 'it-crd';
const custom = kc.makeApiClient(CustomObjectsApi);
const kubectl = (...args: string[]) => run('kubectl', ['--kubeconfig', '.local/kubeconfig', ...args]);

function policy(name: string, spec: Record<string, unknown>) {
  return { apiVersion: API_VERSION, kind: KIND, metadata: { name, namespace: ns }, spec };
}

async function create(name: string, spec: Record<string, unknown>) {
  return custom.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: ns,
    plural: PLURAL,
    body: policy(name, spec),
  });
}

beforeAll(async () => {
  await kubectl('apply', '--server-side', '-f', CRD_FILE);
  await kubectl('wait', '--for=condition=Established', '--timeout=60s', `crd/${PLURAL}.${GROUP}`);
  await createNamespace(ns);
});

describe('PullStatePolicy CRD on the API server', () => {
  it('applies the same defaults as the ajv validators', async () => {
    const created = (await eventually('create', () =>
      create('defaults', { selector: { matchLabels: { app: 'a' } } }),
    )) as {
      spec: Record<string, unknown>;
    };
    const local = parseSpec({ selector: { matchLabels: { app: 'a' } } });
    expect(local.ok).toBe(true);
    if (!local.ok) return;
    // The two computed defaults (restorePath, timeoutSeconds) are the operator's, not the API server's.
    const { restorePath: _r, timeoutSeconds: _t, ...schemaDefaults } = local.value;
    expect(created.spec).toEqual(schemaDefaults);
  });

  it.each([
    [
      'timeout above interval (CEL)',
      { selector: { matchLabels: { a: 'b' } }, intervalSeconds: 2, timeoutSeconds: 3 },
      /timeoutSeconds must not exceed intervalSeconds/,
    ],
    ['empty selector (CEL)', { selector: {} }, /selector must set matchLabels or matchExpressions/],
    [
      'In without values (CEL)',
      { selector: { matchExpressions: [{ key: 'a', operator: 'In' }] } },
      /In and NotIn need values/,
    ],
    [
      'bad mode',
      { selector: { matchLabels: { a: 'b' } }, mode: 'push' },
      /spec.mode: Unsupported value.*supported values.*http-sf/,
    ],
    [
      'port out of range',
      { selector: { matchLabels: { a: 'b' } }, port: 70000 },
      /should be less than or equal to 65535/,
    ],
    ['relative path', { selector: { matchLabels: { a: 'b' } }, path: 'state' }, /spec.path/],
  ])('rejects %s', async (_name, spec, message) => {
    const err = await create(`bad-${Math.random().toString(36).slice(2, 8)}`, spec).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiException);
    expect((err as ApiException<unknown>).code).toBe(422);
    expect(String((err as ApiException<unknown>).body)).toMatch(message);
  });

  it('shows the printer columns and answers to the short name', async () => {
    const { stdout } = await kubectl('get', 'psp', '-n', ns);
    expect(stdout.split('\n')[0]).toMatch(
      /^NAME\s+MODE\s+INTERVAL\s+PODS\s+LAST CHECKPOINT\s+READY\s+PROBLEM\s+AGE/,
    );
    expect(stdout).toMatch(/defaults\s+http-sf\s+10\s/);
  });
});
