// PullStatePolicy status through a real API server: the controller's Manager (informers, policy reconciler,
// status writer) in this process, policies and Pods made through the API.
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { CONDITION_TYPES, GROUP, PLURAL, REASONS, VERSION } from '../../src/api/index.js';
import {
  condition,
  core,
  createPolicy,
  custom,
  eventually,
  getPolicy,
  namespace,
  readyNode,
  runningPod,
  startController,
  type Controller,
} from './env.js';

let controller: Controller;
let ns: string;

beforeAll(async () => {
  const operatorNs = await namespace('operator');
  controller = await startController(operatorNs);
  ns = await namespace('policies');
  await readyNode('policy-node');
});

afterAll(async () => {
  await controller?.stop();
});

/** The policy once its status says `ready` (and `degraded`) for its current generation. */
async function statusOf(name: string, ready: string, degraded: string, generation?: number) {
  return eventually(
    `policy ${name}: Ready ${ready}, Degraded ${degraded}`,
    async () => {
      const p = await getPolicy(ns, name);
      const s = p.status;
      const gen = generation ?? p.metadata?.generation;
      if (s?.observedGeneration !== gen) return undefined;
      const r = condition(s?.conditions, CONDITION_TYPES.ready);
      const d = condition(s?.conditions, CONDITION_TYPES.degraded);
      return r?.reason === ready && d?.reason === degraded ? p : undefined;
    },
    20_000,
  );
}

test('a new policy gets its conditions and observedGeneration; an edit of its spec is observed', async () => {
  const created = await createPolicy(ns, 'plain', {
    selector: { matchLabels: { app: 'nothing-here' } },
    port: 8080,
    path: '/state',
  });
  expect(created.metadata?.generation).toBe(1);
  const first = await statusOf('plain', REASONS.noPods, REASONS.asExpected, 1);
  const ready = condition(first.status!.conditions, CONDITION_TYPES.ready)!;
  expect(ready).toMatchObject({ status: 'True', observedGeneration: 1 });
  expect(condition(first.status!.conditions, CONDITION_TYPES.degraded)).toMatchObject({ status: 'False' });
  expect(first.status).toMatchObject({ protectedPods: 0, checkpoints: [] });

  await custom.patchNamespacedCustomObject(
    {
      group: GROUP,
      version: VERSION,
      namespace: ns,
      plural: PLURAL,
      name: 'plain',
      body: [{ op: 'replace', path: '/spec/intervalSeconds', value: 30 }],
    },
    // JSON patch is the client's default for patch calls.
  );
  const second = await statusOf('plain', REASONS.noPods, REASONS.asExpected, 2);
  // The condition's observedGeneration follows too, while its transition time stays (it did not change).
  const readyAgain = condition(second.status!.conditions, CONDITION_TYPES.ready)!;
  expect(readyAgain.observedGeneration).toBe(2);
  expect(readyAgain.lastTransitionTime).toBe(ready.lastTransitionTime);
});

test('a Pod it selects, Running with an IP, is protected; a Pod deleted is not any more', async () => {
  await createPolicy(ns, 'selects', { selector: { matchLabels: { app: 'one' } }, port: 8080 });
  await statusOf('selects', REASONS.noPods, REASONS.asExpected);
  const pod = await runningPod(ns, 'one-0', {
    node: 'policy-node',
    ip: '10.250.0.10',
    labels: { app: 'one' },
  });
  // A Pod with the label but not Running is no Pod to protect.
  await core.createNamespacedPod({
    namespace: ns,
    body: {
      metadata: { name: 'one-pending', labels: { app: 'one' } },
      spec: { containers: [{ name: 'app', image: 'registry.invalid/app:1' }] },
    },
  });
  const protecting = await eventually(
    'the policy protects the Running Pod',
    async () => {
      const p = await getPolicy(ns, 'selects');
      return p.status?.protectedPods === 1 ? p : undefined;
    },
    20_000,
  );
  const ready = condition(protecting.status!.conditions, CONDITION_TYPES.ready)!;
  expect(ready).toMatchObject({ status: 'False', reason: REASONS.waitingForCheckpoint });
  expect(ready.message).toBe('0 of 1 Pods have a checkpoint');
  expect(protecting.status!.checkpointSummary).toMatchObject({ pods: 1, withoutCheckpoint: 1 });
  expect(controller.manager.c.checkpointer.ownerOf(pod.metadata!.uid!)).toBe(`${ns}/selects`);

  await core.deleteNamespacedPod({ namespace: ns, name: 'one-0', gracePeriodSeconds: 0 });
  const released = await statusOf('selects', REASONS.noPods, REASONS.asExpected);
  expect(released.status!.protectedPods).toBe(0);
  expect(controller.manager.c.checkpointer.ownerOf(pod.metadata!.uid!)).toBeUndefined();
});

test('a spec the API server admits but the controller cannot use is Degraded InvalidSpec, until fixed', async () => {
  // The CRD's pattern admits a control character in the path; no HTTP request can carry it.
  await createPolicy(ns, 'bad-path', {
    selector: { matchLabels: { app: 'bad' } },
    port: 8080,
    path: '/state\u0007',
  });
  const invalid = await statusOf('bad-path', REASONS.invalidSpec, REASONS.invalidSpec, 1);
  const ready = condition(invalid.status!.conditions, CONDITION_TYPES.ready)!;
  const degraded = condition(invalid.status!.conditions, CONDITION_TYPES.degraded)!;
  expect(ready.status).toBe('False');
  expect(degraded.status).toBe('True');
  expect(degraded.message).toContain('invalid spec: spec.path');
  expect(degraded.message).toContain('U+0007');
  const events = await core.listNamespacedEvent({
    namespace: ns,
    fieldSelector: 'involvedObject.name=bad-path',
  });
  expect(events.items.map((e) => [e.type, e.reason])).toContainEqual(['Warning', REASONS.invalidSpec]);

  await custom.patchNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: ns,
    plural: PLURAL,
    name: 'bad-path',
    body: [{ op: 'replace', path: '/spec/path', value: '/state' }],
  });
  const fixed = await statusOf('bad-path', REASONS.noPods, REASONS.asExpected, 2);
  expect(condition(fixed.status!.conditions, CONDITION_TYPES.ready)!.status).toBe('True');
});

// The status writer once compared what it computed with what it had written itself, never with what the API
// holds: a status another writer (kubectl edit --subresource=status, an older controller version) replaced
// stayed until the computed status happened to change; here it does not, so `protectedPods: 7` stayed for good.
test('a status another writer replaced is written again', async () => {
  await createPolicy(ns, 'clobbered', { selector: { matchLabels: { app: 'none' } }, port: 8080 });
  await statusOf('clobbered', REASONS.noPods, REASONS.asExpected);
  await custom.patchNamespacedCustomObjectStatus(
    {
      group: GROUP,
      version: VERSION,
      namespace: ns,
      plural: PLURAL,
      name: 'clobbered',
      body: { status: { protectedPods: 7 } },
    },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
  // The informer sees the change (a reconcile runs); the routine period of the default 10 s interval passes.
  await eventually(
    'protectedPods written back to 0',
    async () => (await getPolicy(ns, 'clobbered')).status?.protectedPods === 0,
    15_000,
  );
});
