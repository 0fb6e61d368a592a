// A StatefulSet keeps its Pods' names across replacements: each replacement must get the state of the Pod of
// its own name, never a sibling's, whether all its Pods are deleted at once or the node of one is lost (the
// StatefulSet controller makes no replacement until the old Pod is gone, so the operator has to delete it).
import type { V1StatefulSet } from '@kubernetes/client-node';
import {
  aheadAllowed,
  failoverTrial,
  PARTITION_MAX_LOST,
  stats,
  type CountStats,
} from '../../harness/failover.js';
import { apps, core, createNamespace, eventually, isReady } from './cluster.js';
import { custom, installOperator, policy } from './operator.js';
import { GROUP, PLURAL, READINESS_GATE, VERSION } from '../../src/api/index.js';
import { COUNT_APP_IMAGE } from '../../harness/images.js';

const ns = 'it-statefulset';
const name = 'counter';
const image = COUNT_APP_IMAGE;
/** Far apart, so a Pod that got its sibling's state is seen at once. */
const START = { [`${name}-0`]: 1_000_000, [`${name}-1`]: 5_000_000 };

const statefulSet: V1StatefulSet = {
  metadata: { name, namespace: ns },
  spec: {
    replicas: 2,
    serviceName: name,
    // Both replacements start at once: the pairing of copies to Pods cannot lean on their order.
    podManagementPolicy: 'Parallel',
    selector: { matchLabels: { app: name } },
    template: {
      metadata: { labels: { app: name } },
      spec: {
        terminationGracePeriodSeconds: 10,
        readinessGates: [{ conditionType: READINESS_GATE }],
        containers: [
          {
            name: 'app',
            image,
            ports: [{ name: 'http', containerPort: 8080 }],
            readinessProbe: { httpGet: { path: '/readyz', port: 'http' }, periodSeconds: 1 },
          },
        ],
      },
    },
  },
};

async function pod(podName: string) {
  return await eventually(
    `${podName} Ready`,
    async () => {
      const p = await core.readNamespacedPod({ name: podName, namespace: ns }).catch(() => undefined);
      return p && isReady(p) ? p : undefined;
    },
    120_000,
  );
}

async function counter(podName: string): Promise<CountStats> {
  const p = await pod(podName);
  return await eventually(`${podName}'s counter`, () => stats(p.status!.podIP!, 1000));
}

/** Sets each Pod's counter to its start value and waits until the policy holds a checkpoint taken after that. */
async function setCounters(): Promise<void> {
  for (const [podName, count] of Object.entries(START)) {
    const p = await pod(podName);
    const res = await fetch(`http://${p.status!.podIP}:8080/state`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ count }),
    });
    expect(res.status).toBe(200);
  }
  const set = Date.now();
  await eventually('checkpoints of both Pods taken after the counters were set', async () => {
    const cps = (await policy(ns, name)).status?.checkpoints ?? [];
    return Object.keys(START).every((podName) =>
      cps.some((c) => c.pod === podName && !c.orphaned && Date.parse(c.timestamp ?? '') > set + 1000),
    );
  });
}

beforeAll(async () => {
  await installOperator();
  await createNamespace(ns);
  await apps.createNamespacedStatefulSet({ namespace: ns, body: statefulSet });
  await custom.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: ns,
    plural: PLURAL,
    body: {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: 'PullStatePolicy',
      metadata: { name },
      spec: { selector: { matchLabels: { app: name } }, mode: 'http-sf', intervalSeconds: 1, port: 8080 },
    },
  });
  await pod(`${name}-0`);
  await pod(`${name}-1`);
});

// Its two Pods would otherwise go on being pulled and probed through the test files that follow.
afterAll(async () => {
  await apps.deleteNamespacedStatefulSet({ name, namespace: ns }).catch(() => undefined);
});

describe('a StatefulSet protected by a policy (interval 1 s, http-sf)', () => {
  it('both Pods deleted at once: each comes back under its name with its own counter', async () => {
    await setCounters();
    const before = Object.fromEntries(
      await Promise.all(Object.keys(START).map(async (n) => [n, (await pod(n)).metadata!.uid!] as const)),
    );
    const at = Object.fromEntries(
      await Promise.all(Object.keys(START).map(async (n) => [n, (await counter(n)).count] as const)),
    );
    await Promise.all(Object.keys(START).map((n) => core.deleteNamespacedPod({ name: n, namespace: ns })));
    for (const [podName, start] of Object.entries(START)) {
      const s = await eventually(
        `${podName} replaced and restored`,
        async () => {
          const p = await core.readNamespacedPod({ name: podName, namespace: ns }).catch(() => undefined);
          if (!p || p.metadata!.uid === before[podName] || !isReady(p)) return undefined;
          const st = await stats(p.status!.podIP!, 1000);
          return st && st.restores >= 1 ? st : undefined;
        },
        120_000,
      );
      // Its own counter (a sibling's is millions away), at least where it was when it was deleted: the
      // final pulls of a terminating Pod take what it counted until SIGTERM.
      expect(s.restores).toBe(1);
      expect(s.restoredCount).toBeGreaterThanOrEqual(at[podName]!);
      expect(s.restoredCount).toBeLessThan(start + 1_000_000);
    }
  });

  it('node lost: the Pod is deleted from the fenced node, recreated elsewhere under its name, with its counter', async () => {
    await setCounters();
    const sibling = await pod(`${name}-1`);
    // Setting a counter is a POST /state too: what the app counts as restores so far.
    const siblingRestores = (await counter(`${name}-1`)).restores;
    const r = await failoverTrial(ns, `statefulset.kubernetes.io/pod-name=${name}-0`, 'partition');
    expect(r.podAfter).toBe(`${name}-0`);
    expect(r.nodeAfter).not.toBe(r.nodeBefore);
    expect(r.restoredCount).toBeGreaterThanOrEqual(START[`${name}-0`]);
    expect(r.restoredCount).toBeLessThan(START[`${name}-1`]);
    expect(r.lostUpdates).toBeLessThanOrEqual(PARTITION_MAX_LOST);
    expect(r.lostUpdates).toBeGreaterThanOrEqual(-aheadAllowed(r));
    // The sibling kept its own state: restored again only if it ran on the lost node, and then with its own.
    const s = await counter(`${name}-1`);
    expect(s.count).toBeGreaterThanOrEqual(START[`${name}-1`]);
    if (sibling.spec!.nodeName !== r.nodeBefore) expect(s.restores).toBe(siblingRestores);
  });
});
