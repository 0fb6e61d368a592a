// Only the app container's restarts are restored (#27): a Pod with a native sidecar and a plain second
// container ahead of the app. Crashing either sidecar must leave the live app alone (a restore would send its
// counter back in time); crashing the app, which is not the first container, restores it. Then a policy the
// CRD admits with a long pull timeout (700 s at a 900 s interval) restores and opens the gate: the helper
// refused restore timeouts over 600 s, and the restore retried forever.
import type { V1Pod, V1PodSpec } from '@kubernetes/client-node';
import { READINESS_GATE } from '../../src/api/index.js';
import { appDeployment } from '../../harness/deployment.js';
import { EXEC_IMAGE } from '../../harness/fixture-app.js';
import { stats } from '../../harness/failover.js';
import { apps, cluster, core, createNamespace, eventually, readyPods } from './cluster.js';
import { createPolicy, installOperator, policy } from './operator.js';
import { COUNT_APP_IMAGE } from '../../harness/images.js';

const ns = 'it-app-container';
const COUNT_APP = COUNT_APP_IMAGE;
const idle = (name: string) => ({
  name,
  image: EXEC_IMAGE,
  command: ['python3', '-c', 'import time\nwhile True: time.sleep(1)'],
});

function podSpec(): V1PodSpec {
  return {
    terminationGracePeriodSeconds: 1,
    readinessGates: [{ conditionType: READINESS_GATE }],
    initContainers: [{ ...idle('mesh-proxy'), restartPolicy: 'Always' }],
    containers: [
      idle('log-shipper'),
      {
        name: 'app',
        image: COUNT_APP,
        ports: [{ name: 'http', containerPort: 8080 }],
        readinessProbe: { httpGet: { path: '/readyz', port: 'http' }, periodSeconds: 1 },
      },
    ],
  };
}

async function onePod(app: string): Promise<V1Pod> {
  const [pod] = await eventually(
    `${app} Ready`,
    async () => {
      const p = await readyPods(ns, `app=${app}`);
      return p.length === 1 ? p : undefined;
    },
    120_000,
  );
  return pod!;
}

/** The newest checkpoint sequence of the Pod, once there is one. */
async function sequence(app: string, uid: string): Promise<number> {
  return eventually(`a checkpoint of ${app}`, async () => {
    const c = (await policy(ns, app)).status?.checkpoints?.find((x) => x.podUID === uid && !x.orphaned);
    return c?.sequence;
  });
}

const restarts = (pod: V1Pod, container: string) =>
  [...(pod.status?.containerStatuses ?? []), ...(pod.status?.initContainerStatuses ?? [])].find(
    (c) => c.name === container,
  )?.restartCount ?? 0;

async function crash(pod: V1Pod, container: string): Promise<void> {
  const name = pod.metadata!.name!;
  const before = restarts(pod, container);
  await cluster('fault', 'crash', `${ns}/${name}`, '-c', container);
  await eventually(`${container} restarted`, async () => {
    const now = await core.readNamespacedPod({ name, namespace: ns });
    return restarts(now, container) > before;
  });
}

/** Crashes the app container and waits for its new process to be restored from a real checkpoint. */
async function crashAndRestore(pod: V1Pod) {
  await crash(pod, 'app');
  const restored = await eventually(
    'the app restored',
    async () => {
      const s = await stats(pod.status!.podIP!, 2000);
      return s && s.restores === 1 ? s : undefined;
    },
    60_000,
  );
  expect(restored.restoredCount).toBeGreaterThan(0);
  return restored;
}

async function restoredEvents(pod: V1Pod): Promise<number> {
  const list = await core.listNamespacedEvent({
    namespace: ns,
    fieldSelector: `involvedObject.name=${pod.metadata!.name},reason=Restored`,
  });
  return list.items.length;
}

beforeAll(async () => {
  await installOperator();
  await createNamespace(ns);
});

describe('the app container is the one that matters', () => {
  const app = 'sidecars';

  beforeAll(async () => {
    await apps.createNamespacedDeployment({
      namespace: ns,
      body: appDeployment(app, ns, 1, podSpec()),
    });
    await createPolicy(ns, app, {
      selector: { matchLabels: { app } },
      mode: 'http',
      intervalSeconds: 1,
      port: 8080,
    });
  });

  it.each(['mesh-proxy', 'log-shipper'])(
    'a crash of the %s sidecar leaves the live app and its state alone',
    async (sidecar) => {
      const pod = await onePod(app);
      const uid = pod.metadata!.uid!;
      const seq = await sequence(app, uid);
      const before = await stats(pod.status!.podIP!, 2000);
      expect(before?.restores).toBe(0);
      await crash(pod, sidecar);
      // The operator has seen the Pod since the restart and checkpointed the live app a few more times.
      await eventually(
        'checkpoints after the sidecar restart',
        async () => (await sequence(app, uid)) > seq + 3,
      );
      const after = await stats(pod.status!.podIP!, 2000);
      expect(after?.restores).toBe(0);
      expect(after!.count).toBeGreaterThan(before!.count);
      expect(await restoredEvents(pod)).toBe(0);
    },
  );

  it('a crash of the app container (not the first container) is restored', async () => {
    const pod = await onePod(app);
    await sequence(app, pod.metadata!.uid!);
    await crashAndRestore(pod);
    await onePod(app);
  });
});

describe('every timeout the CRD admits', () => {
  const app = 'long-timeout';

  it('restores after a crash with timeoutSeconds 700 at a 900 s interval, and opens the gate', async () => {
    const spec = podSpec();
    spec.initContainers = [];
    spec.containers = spec.containers.filter((c) => c.name === 'app');
    await apps.createNamespacedDeployment({ namespace: ns, body: appDeployment(app, ns, 1, spec) });
    // Its only checkpoint (one per 900 s) may be taken the moment the app listens, before its counter first
    // ticks: the counter starts far from 0 instead, so a restore of the right state restores a count > 0.
    await eventually(
      'the new app answering',
      async () => {
        const list = await core.listNamespacedPod({ namespace: ns, labelSelector: `app=${app}` });
        const ip = list.items.find((p) => p.status?.podIP)?.status?.podIP;
        if (!ip || !(await stats(ip, 2000))) return undefined;
        const set = await fetch(`http://${ip}:8080/state`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ count: 1000 }),
        });
        return set.ok;
      },
      120_000,
    );
    await createPolicy(ns, app, {
      selector: { matchLabels: { app } },
      mode: 'http',
      intervalSeconds: 900,
      timeoutSeconds: 700,
      port: 8080,
    });
    const pod = await onePod(app);
    await sequence(app, pod.metadata!.uid!);
    await crashAndRestore(pod);
    const ready = await onePod(app);
    const gate = ready.status?.conditions?.find((c) => c.type === READINESS_GATE);
    expect(gate?.status).toBe('True');
    expect(gate?.reason).toBe('Restored');
  });
});

afterAll(async () => {
  for (const name of ['sidecars', 'long-timeout'])
    await apps.deleteNamespacedDeployment({ name, namespace: ns }).catch(() => undefined);
});
