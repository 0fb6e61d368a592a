// A container restarted in place, through a real API server: the controller sees the restart in the Pod's
// status, closes the readiness gate, has the helper that holds the Pod's own copy push it, and opens the gate
// again; an app that names its process is pulled first, so the process restored already is left alone.
import type { V1Pod } from '@kubernetes/client-node';
import { READINESS_GATE, type BlobMeta, type PullReport } from '../../src/api/index.js';
import {
  core,
  createPolicy,
  eventually,
  getPolicy,
  healthServer,
  helperPod,
  mergePatch,
  namespace,
  readyNode,
  runningPod,
  startController,
  type Controller,
} from './env.js';

let controller: Controller;
let health: Awaited<ReturnType<typeof healthServer>>;
let ns: string;
let policyUID: string;

/** A copy of `pod` pulled a minute ago (before any restart the test makes). */
function copy(pod: V1Pod, sequence: number, instance?: string): BlobMeta {
  const pulledAt = Date.now() - 60_000;
  return {
    id: `${ns}_${pod.metadata!.uid}`,
    namespace: ns,
    policy: 'counter',
    policyUID,
    pod: pod.metadata!.name!,
    podUID: pod.metadata!.uid!,
    sequence,
    restartCount: 0,
    pulledAt,
    sizeBytes: 100,
    digest: `sha256:${String(sequence).repeat(64).slice(0, 64)}`,
    contentType: 'application/json',
    storedAt: new Date(pulledAt).toISOString(),
    ...(instance ? { instance } : {}),
  };
}

const gate = (pod: V1Pod | undefined) => pod?.status?.conditions?.find((c) => c.type === READINESS_GATE);

async function gateReason(name: string): Promise<string | undefined> {
  const pod = await core.readNamespacedPod({ namespace: ns, name });
  const g = gate(pod);
  return g ? `${g.status} ${g.reason}` : undefined;
}

/** The API shows the app container restarted: one more restart, running since now. */
async function restart(name: string): Promise<void> {
  const pod = await core.readNamespacedPod({ namespace: ns, name });
  const now = new Date();
  const status = pod.status!.containerStatuses!.map((c) => ({
    ...c,
    restartCount: c.restartCount + 1,
    lastState: { terminated: { exitCode: 137, startedAt: now, finishedAt: now } },
    state: { running: { startedAt: now } },
  }));
  await core.patchNamespacedPodStatus(
    { namespace: ns, name, body: { status: { containerStatuses: status } } },
    mergePatch,
  );
}

/**
 * A gated app Pod, its gate opened, with a copy of its own on the other node's helper that the controller
 * has read (its first look came before the copy existed: nothing to restore then).
 */
async function protectedApp(name: string, ip: string, instance?: string): Promise<V1Pod> {
  const pod = await runningPod(ns, name, {
    node: 'restart-app-node',
    ip,
    labels: { app: 'counter' },
    gated: true,
  });
  await eventually(
    `${name}: its gate opened`,
    async () => (await gateReason(name))?.startsWith('True'),
    20_000,
  );
  const blobs = controller.helpers.blobs.get('restart-helper-node') ?? [];
  controller.helpers.blobs.set('restart-helper-node', [...blobs, copy(pod, 7, instance)]);
  await controller.manager.c.inventories.learnAll();
  const record = controller.manager.c.book.get(pod.metadata!.uid!);
  expect(record?.generations.map((g) => g.sequence)).toEqual([7]);
  expect(record?.instance).toBe(instance);
  return pod;
}

beforeAll(async () => {
  const operatorNs = await namespace('operator');
  health = await healthServer();
  controller = await startController(operatorNs);
  ns = await namespace('restarts');
  await readyNode('restart-app-node');
  await readyNode('restart-helper-node');
  // Every node has a helper: the app node's pulls its Pods (a restart check), the other holds the copies.
  await helperPod(operatorNs, 'helper-a', 'restart-app-node', health.port);
  await helperPod(operatorNs, 'helper-r', 'restart-helper-node', health.port);
  const policy = await createPolicy(ns, 'counter', {
    selector: { matchLabels: { app: 'counter' } },
    mode: 'http',
    port: 8080,
    path: '/state',
  });
  policyUID = policy.metadata!.uid!;
  await eventually(
    'the policy is reconciled',
    async () => (await getPolicy(ns, 'counter')).status !== undefined,
    20_000,
  );
});

afterAll(async () => {
  await controller?.stop();
  await health?.close();
});

test('a restart the API shows: gate closed, the own copy pushed into the new process, gate opened', async () => {
  const pod = await protectedApp('plain-0', '10.250.3.7');
  const before = controller.helpers.restores.length;
  await restart('plain-0');
  await eventually(
    'the restore was asked for',
    async () => controller.helpers.restores.length > before,
    20_000,
  );
  const asked = controller.helpers.restores.slice(before);
  expect(asked).toEqual([
    expect.objectContaining({
      node: 'restart-helper-node',
      podUID: pod.metadata!.uid,
      request: expect.objectContaining({
        podIP: '10.250.3.7',
        sequence: 7,
        target: { podUID: pod.metadata!.uid, restartCount: 1 },
      }),
    }),
  ]);
  await eventually(
    'the gate opened again',
    async () => (await gateReason('plain-0')) === 'True Restored',
    20_000,
  );
  const g = gate(await core.readNamespacedPod({ namespace: ns, name: 'plain-0' }));
  expect(g?.message).toContain('from its own checkpoint after a restart');
});

test('an app that names its process is pulled first: a new process is restored', async () => {
  const pod = await protectedApp('named-0', '10.250.3.8', 'process-1');
  controller.helpers.pullAnswer = (a): PullReport => ({
    ok: false,
    reason: 'Restarted',
    message: 'the app answered as a new process',
    instance: 'process-2',
    durationMs: 2,
    namespace: a.namespace,
    podUID: a.podUID,
    sequence: a.lastSequence + 1,
    targets: a.targets.map((t) => t.node),
    pulledAt: Date.now(),
  });
  const restores = controller.helpers.restores.length;
  await restart('named-0');
  await eventually(
    'the restore was asked for',
    async () => controller.helpers.restores.length > restores,
    20_000,
  );
  expect(controller.helpers.pulls.some((a) => a.podUID === pod.metadata!.uid)).toBe(true);
  expect(controller.helpers.restores.slice(restores)).toEqual([
    expect.objectContaining({
      podUID: pod.metadata!.uid,
      request: expect.objectContaining({
        sequence: 7,
        target: { podUID: pod.metadata!.uid, restartCount: 1, instance: 'process-2' },
      }),
    }),
  ]);
  await eventually(
    'the gate opened again',
    async () => (await gateReason('named-0')) === 'True Restored',
    20_000,
  );
});

test('an app that names its process: the process restored already answers, nothing is pushed', async () => {
  const pod = await protectedApp('kept-0', '10.250.3.9', 'process-1');
  // The restarted container answers as the process the copies are of: a previous restore of this process
  // (seen first by a pull, or by a previous leader).
  controller.helpers.pullAnswer = (a): PullReport => ({
    ok: true,
    sizeBytes: 100,
    digest: `sha256:${'8'.repeat(64)}`,
    contentType: 'application/json',
    instance: 'process-1',
    stored: [
      {
        node: 'restart-helper-node',
        meta: { ...copy(pod, 8, 'process-1'), restartCount: 1, pulledAt: Date.now() },
      },
    ],
    failed: [],
    durationMs: 2,
    namespace: a.namespace,
    podUID: a.podUID,
    sequence: 8,
    targets: ['restart-helper-node'],
    pulledAt: Date.now(),
  });
  const restores = controller.helpers.restores.length;
  const pulls = controller.helpers.pulls.length;
  await restart('kept-0');
  await eventually(
    'the restarted container was pulled',
    async () => controller.helpers.pulls.slice(pulls).some((a) => a.podUID === pod.metadata!.uid),
    20_000,
  );
  await eventually('the gate is open', async () => (await gateReason('kept-0')) === 'True StateKept', 20_000);
  // A moment for a wrong restore to show up.
  await new Promise((r) => setTimeout(r, 1000));
  expect(controller.helpers.restores.slice(restores).filter((x) => x.podUID === pod.metadata!.uid)).toEqual(
    [],
  );
});
