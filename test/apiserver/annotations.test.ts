// Compatibility mode through a real API server: `hitachienergy.com/ps_*` annotations on a Deployment become a
// managed PullStatePolicy (the workload reconciler), whose status the policy reconciler writes.
import { AppsV1Api, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { ANNOTATIONS, CONDITION_TYPES, LABELS, REASONS, type IPullStatePolicy } from '../../src/api/index.js';
import {
  condition,
  core,
  createPolicy,
  eventually,
  getPolicy,
  kc,
  namespace,
  startController,
  type Controller,
} from './env.js';

const apps = kc.makeApiClient(AppsV1Api);
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
let controller: Controller;
let ns: string;

beforeAll(async () => {
  controller = await startController(await namespace('operator'));
  ns = await namespace('annotations');
});

afterAll(async () => {
  await controller?.stop();
});

async function annotate(annotations: Record<string, string | null>): Promise<void> {
  await apps.patchNamespacedDeployment(
    { namespace: ns, name: 'web', body: { metadata: { annotations } } },
    mergePatch,
  );
}

async function policyWhere(what: string, check: (p: IPullStatePolicy) => boolean): Promise<IPullStatePolicy> {
  return eventually(
    what,
    async () => {
      const p = await getPolicy(ns, 'web');
      return check(p) ? p : undefined;
    },
    20_000,
  );
}

test('annotations make a managed policy; a bad value keeps the last good one and shows InvalidAnnotation', async () => {
  const deployment = await apps.createNamespacedDeployment({
    namespace: ns,
    body: {
      metadata: {
        name: 'web',
        annotations: {
          [ANNOTATIONS.mode]: 'http',
          [ANNOTATIONS.port]: '8080',
          [ANNOTATIONS.path]: '/state',
          [ANNOTATIONS.interval]: '5',
        },
      },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: 'web' } },
        template: {
          metadata: { labels: { app: 'web' } },
          spec: { containers: [{ name: 'app', image: 'registry.invalid/web:1' }] },
        },
      },
    },
  });

  const managed = await policyWhere('the managed policy Ready', (p) =>
    Boolean(condition(p.status?.conditions, CONDITION_TYPES.ready)?.status === 'True'),
  );
  expect(managed.spec).toMatchObject({
    selector: { matchLabels: { app: 'web' } },
    mode: 'http',
    port: 8080,
    path: '/state',
    intervalSeconds: 5,
  });
  expect(managed.metadata!.labels).toMatchObject({ [LABELS.managedFrom]: 'Deployment' });
  expect(managed.metadata!.ownerReferences).toEqual([
    expect.objectContaining({
      kind: 'Deployment',
      name: 'web',
      uid: deployment.metadata!.uid,
      controller: true,
    }),
  ]);
  expect(condition(managed.status!.conditions, CONDITION_TYPES.degraded)?.reason).toBe(REASONS.asExpected);

  await annotate({ [ANNOTATIONS.port]: 'http' });
  const degraded = await policyWhere(
    'the managed policy Degraded InvalidAnnotation',
    (p) => condition(p.status?.conditions, CONDITION_TYPES.degraded)?.reason === REASONS.invalidAnnotation,
  );
  const d = condition(degraded.status!.conditions, CONDITION_TYPES.degraded)!;
  expect(d.status).toBe('True');
  expect(d.message).toContain(`${ANNOTATIONS.port}="http"`);
  expect(d.message).toContain('the last valid settings stay in effect');
  // Not blocking: the last good settings keep working.
  expect(degraded.spec.port).toBe(8080);
  expect(condition(degraded.status!.conditions, CONDITION_TYPES.ready)?.status).toBe('True');
  const events = await core.listNamespacedEvent({
    namespace: ns,
    fieldSelector: 'involvedObject.kind=Deployment,involvedObject.name=web',
  });
  expect(events.items.map((e) => [e.type, e.reason])).toContainEqual(['Warning', REASONS.invalidAnnotation]);

  await annotate({ [ANNOTATIONS.port]: '9090' });
  const fixed = await policyWhere(
    'the managed policy on port 9090, Degraded AsExpected',
    (p) =>
      p.spec.port === 9090 &&
      condition(p.status?.conditions, CONDITION_TYPES.degraded)?.reason === REASONS.asExpected &&
      p.status?.observedGeneration === p.metadata?.generation,
  );
  expect(fixed.metadata!.generation).toBe(2);

  // Annotations removed: the managed policy goes.
  await annotate({
    [ANNOTATIONS.mode]: null,
    [ANNOTATIONS.port]: null,
    [ANNOTATIONS.path]: null,
    [ANNOTATIONS.interval]: null,
  });
  await eventually(
    'the managed policy deleted',
    async () =>
      getPolicy(ns, 'web').then(
        () => false,
        (err: unknown) => (err as { code?: number }).code === 404,
      ),
    20_000,
  );
});

test('annotations on a workload whose name an unmanaged policy has are ignored, with a Warning', async () => {
  await createPolicy(ns, 'shared', { selector: { matchLabels: { app: 'by-hand' } }, port: 7070 });
  await apps.createNamespacedDeployment({
    namespace: ns,
    body: {
      metadata: { name: 'shared', annotations: { [ANNOTATIONS.mode]: 'http', [ANNOTATIONS.port]: '8080' } },
      spec: {
        selector: { matchLabels: { app: 'shared' } },
        template: {
          metadata: { labels: { app: 'shared' } },
          spec: { containers: [{ name: 'app', image: 'registry.invalid/web:1' }] },
        },
      },
    },
  });
  const warning = await eventually(
    'a PolicyConflict Event on the Deployment',
    async () =>
      (
        await core.listNamespacedEvent({
          namespace: ns,
          fieldSelector: 'involvedObject.kind=Deployment,involvedObject.name=shared',
        })
      ).items.find((e) => e.reason === 'PolicyConflict'),
    20_000,
  );
  expect(warning.type).toBe('Warning');
  expect(warning.message).toBe(
    'a PullStatePolicy named shared exists and is not managed from this Deployment; the annotations are ignored',
  );
  const policy = await getPolicy(ns, 'shared');
  expect(policy.spec).toMatchObject({ port: 7070, selector: { matchLabels: { app: 'by-hand' } } });
  expect(policy.metadata!.labels?.[LABELS.managedFrom]).toBeUndefined();
  expect(policy.metadata!.ownerReferences).toBeUndefined();
});
