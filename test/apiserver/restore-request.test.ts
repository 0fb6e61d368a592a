// PullStateRestore through a real API server: the controller's Manager in this process; the helper that holds
// the copies is a fake helper client (a Ready helper Pod of another node in the API, its health port a local
// HTTP server the leader probes).
import type { V1Pod } from '@kubernetes/client-node';
import type { BlobMeta } from '../../src/api/index.js';
import {
  core,
  createPolicy,
  createRestore,
  eventually,
  getPolicy,
  getRestore,
  healthServer,
  helperPod,
  namespace,
  readyNode,
  runningPod,
  startController,
  type Controller,
} from './env.js';

let controller: Controller;
let health: Awaited<ReturnType<typeof healthServer>>;
let ns: string;
let app: V1Pod;

function copy(pod: V1Pod, policyUID: string, sequence: number, storedAt: string): BlobMeta {
  return {
    id: `${ns}_${pod.metadata!.uid}`,
    namespace: ns,
    policy: 'counter',
    policyUID,
    pod: pod.metadata!.name!,
    podUID: pod.metadata!.uid!,
    sequence,
    restartCount: 0,
    pulledAt: Date.parse(storedAt),
    sizeBytes: 100 + sequence,
    digest: `sha256:${String(sequence).repeat(64).slice(0, 64)}`,
    contentType: 'application/octet-stream',
    storedAt,
  };
}

async function finished(name: string) {
  return eventually(
    `PullStateRestore ${name} finished`,
    async () => {
      const r = await getRestore(ns, name);
      return r.status?.phase === 'Succeeded' || r.status?.phase === 'Failed' ? r : undefined;
    },
    20_000,
  );
}

beforeAll(async () => {
  const operatorNs = await namespace('operator');
  health = await healthServer();
  controller = await startController(operatorNs);
  ns = await namespace('restores');
  await readyNode('restore-app-node');
  await readyNode('restore-helper-node');
  await helperPod(operatorNs, 'helper-b', 'restore-helper-node', health.port);
  const policy = await createPolicy(ns, 'counter', {
    selector: { matchLabels: { app: 'counter' } },
    mode: 'http',
    port: 8080,
    path: '/state',
    restorePath: '/restore',
  });
  app = await runningPod(ns, 'counter-0', {
    node: 'restore-app-node',
    ip: '10.250.1.7',
    labels: { app: 'counter' },
  });
  // Two generations of the app's state on the other node's helper.
  controller.helpers.blobs.set('restore-helper-node', [
    copy(app, policy.metadata!.uid!, 3, '2026-12-01T10:00:00.000Z'),
    copy(app, policy.metadata!.uid!, 4, '2026-12-01T10:00:10.000Z'),
  ]);
  await eventually(
    'the policy protects the app Pod',
    async () => (await getPolicy(ns, 'counter')).status?.protectedPods === 1,
    20_000,
  );
});

afterAll(async () => {
  await controller?.stop();
  await health?.close();
});

test('a restore naming a policy that does not exist fails, saying what is allowed', async () => {
  await createRestore(ns, 'no-policy', { policyName: 'nope' });
  const r = await finished('no-policy');
  expect(r.status).toMatchObject({ phase: 'Failed', restoredPods: 0, observedGeneration: 1 });
  expect(r.status!.message).toBe(
    `PullStatePolicy ${ns}/nope not found; allowed: a policy in namespace ${ns} (kubectl get pullstatepolicies -n ${ns})`,
  );
  expect(r.status!.completionTime).toBeDefined();
  const events = await core.listNamespacedEvent({
    namespace: ns,
    fieldSelector: 'involvedObject.name=no-policy',
  });
  expect(events.items.map((e) => [e.type, e.reason])).toContainEqual(['Warning', 'RestoreFailed']);
  expect(controller.helpers.restores).toHaveLength(0);
});

test('a restore naming a Pod the policy does not protect fails, listing the Pods it does', async () => {
  await createRestore(ns, 'no-pod', { policyName: 'counter', podName: 'ghost' });
  const r = await finished('no-pod');
  expect(r.status).toMatchObject({ phase: 'Failed', restoredPods: 0 });
  expect(r.status!.message).toBe('Pod ghost is not protected by counter; allowed: counter-0');
  expect(controller.helpers.restores).toHaveLength(0);
});

test('a restore of an older generation has the helper that holds it push it, and records the result', async () => {
  await createRestore(ns, 'roll-back', {
    policyName: 'counter',
    podName: 'counter-0',
    generation: { from: 'Index', index: 1 },
  });
  const r = await finished('roll-back');
  expect(r.status).toMatchObject({ phase: 'Succeeded', restoredPods: 1, message: 'restored into 1 Pod(s)' });
  expect(r.status!.pods).toEqual([
    {
      pod: 'counter-0',
      podUID: app.metadata!.uid,
      node: 'restore-helper-node',
      sequence: 3,
      pulledAt: '2026-12-01T10:00:00.000Z',
      sizeBytes: 103,
      result: 'Succeeded',
    },
  ]);
  expect(controller.helpers.restores).toEqual([
    {
      node: 'restore-helper-node',
      namespace: ns,
      podUID: app.metadata!.uid,
      request: expect.objectContaining({ podIP: '10.250.1.7', port: 8080, path: '/restore', sequence: 3 }),
    },
  ]);
  const events = await core.listNamespacedEvent({
    namespace: ns,
    fieldSelector: 'involvedObject.name=counter-0',
  });
  const rolledBack = events.items.find((e) => e.reason === 'RolledBack');
  expect(rolledBack?.message).toBe(
    'state of 2026-12-01T10:00:00.000Z (generation 3) restored by PullStateRestore roll-back',
  );
});

test('a push the app refuses fails the restore with the reason', async () => {
  controller.helpers.restoreAnswer = () => ({
    result: 'Failed',
    reason: 'Rejected',
    status: 422,
    message: 'the app answered 422',
    durationMs: 3,
    sequence: 4,
    digest: `sha256:${'4'.repeat(64)}`,
    sizeBytes: 104,
  });
  const before = controller.helpers.restores.length;
  await createRestore(ns, 'refused', { policyName: 'counter' });
  const r = await finished('refused');
  expect(r.status).toMatchObject({ phase: 'Failed', restoredPods: 0 });
  expect(r.status!.message).toBe('restored into 0 of 1 Pod(s); counter-0: Rejected: the app answered 422');
  expect(r.status!.pods).toEqual([
    expect.objectContaining({
      pod: 'counter-0',
      result: 'Failed',
      message: 'Rejected: the app answered 422',
    }),
  ]);
  // No generation named: the newest.
  expect(controller.helpers.restores.slice(before).map((x) => x.request.sequence)).toEqual([4]);
});
