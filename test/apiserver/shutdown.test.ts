// A stopping leader waits for its work in flight before it may release the Lease (main.ts releases it only
// when Manager.stop says the work ended): a restore push still landing after the release could overwrite the
// state of an app the next leader restored and let through its gate already.
import type { V1Pod } from '@kubernetes/client-node';
import type { BlobMeta } from '../../src/api/index.js';
import type { RestoreAnswer } from '../../src/controller/kube/helper-client.js';
import {
  createPolicy,
  createRestore,
  eventually,
  getPolicy,
  healthServer,
  helperPod,
  namespace,
  readyNode,
  runningPod,
  startController,
  type Controller,
} from './env.js';

let health: Awaited<ReturnType<typeof healthServer>>;
let operatorNs: string;

beforeAll(async () => {
  operatorNs = await namespace('operator');
  health = await healthServer();
  await readyNode('drain-app-node');
  await readyNode('drain-helper-node');
  await helperPod(operatorNs, 'helper-drain', 'drain-helper-node', health.port);
});

afterAll(async () => {
  await health?.close();
});

/** A controller protecting one app Pod whose copy the fake helper holds; its pushes wait for `release`. */
async function controllerWithSlowPush(): Promise<{
  controller: Controller;
  ns: string;
  release: () => void;
  pushed: Promise<void>;
  answered: { at?: number };
}> {
  const controller = await startController(operatorNs);
  const ns = await namespace('drain');
  const policy = await createPolicy(ns, 'counter', {
    selector: { matchLabels: { app: 'counter' } },
    mode: 'http',
    port: 8080,
    path: '/state',
    restorePath: '/restore',
  });
  const app: V1Pod = await runningPod(ns, 'counter-0', {
    node: 'drain-app-node',
    ip: '10.250.2.7',
    labels: { app: 'counter' },
  });
  const blob: BlobMeta = {
    id: `${ns}_${app.metadata!.uid}`,
    namespace: ns,
    policy: 'counter',
    policyUID: policy.metadata!.uid!,
    pod: 'counter-0',
    podUID: app.metadata!.uid!,
    sequence: 2,
    restartCount: 0,
    pulledAt: Date.parse('2026-12-01T10:00:00.000Z'),
    sizeBytes: 102,
    digest: `sha256:${'2'.repeat(64)}`,
    contentType: 'application/octet-stream',
    storedAt: '2026-12-01T10:00:00.000Z',
  };
  controller.helpers.blobs.set('drain-helper-node', [blob]);
  await eventually(
    'the policy protects the app Pod',
    async () => (await getPolicy(ns, 'counter')).status?.protectedPods === 1,
    20_000,
  );
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let pushStarted!: () => void;
  const pushed = new Promise<void>((r) => (pushStarted = r));
  const answered: { at?: number } = {};
  controller.helpers.restoreAnswer = async (_node, request): Promise<RestoreAnswer> => {
    pushStarted();
    await released;
    answered.at = Date.now();
    return {
      result: 'Succeeded',
      status: 200,
      durationMs: 3,
      sequence: request.sequence ?? 2,
      digest: blob.digest,
      sizeBytes: 102,
    };
  };
  await createRestore(ns, 'roll-back', { policyName: 'counter' });
  return { controller, ns, release, pushed, answered };
}

test('stop resolves only after a restore push in progress ended, and says it drained', async () => {
  const { controller, release, pushed, answered } = await controllerWithSlowPush();
  await pushed;
  const stopping = controller.stop(10_000);
  let stoppedAt: number | undefined;
  void stopping.then(() => (stoppedAt = Date.now()));
  await new Promise((r) => setTimeout(r, 300));
  expect(stoppedAt).toBeUndefined();
  release();
  await expect(stopping).resolves.toBe(true);
  expect(answered.at).toBeDefined();
  expect(stoppedAt!).toBeGreaterThanOrEqual(answered.at!);
});

test('a push that outlasts the wait makes stop say so: the Lease must then be left to expire', async () => {
  const { controller, release, pushed, answered } = await controllerWithSlowPush();
  await pushed;
  await expect(controller.stop(200)).resolves.toBe(false);
  expect(answered.at).toBeUndefined();
  release();
});
