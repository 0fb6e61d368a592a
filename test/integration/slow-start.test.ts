// Fast failover (http-sf) and apps that start slowly: a Python app that listens only 8 s after it starts,
// with and without a startupProbe, is never taken for a failed one; it becomes Ready, is checkpointed, and
// is restored after a crash (the restarted process is slow again) and after a node partition.
import type { V1Container } from '@kubernetes/client-node';
import { READINESS_GATE } from '../../src/api/index.js';
import { appDeployment } from '../../harness/deployment.js';
import { createFixtures, fixturePod } from '../../harness/fixture-app.js';
import { aheadAllowed, failoverTrial, PARTITION_MAX_LOST, stats } from '../../harness/failover.js';
import { apps, core, createNamespace, eventually, readyPods } from './cluster.js';
import { createPolicy, installOperator, policy, warningEvents } from './operator.js';

const ns = 'it-slow-start';
/**
 * A crash: this app sends no process id, so the restore uses a copy pulled before the second in which the
 * new process started (the API's start time is in whole seconds): at most two intervals.
 */
const MAX_LOST_RESTART = 21;

const variants: { name: string; container: Partial<V1Container> }[] = [
  { name: 'slow', container: {} },
  {
    name: 'slow-startup',
    container: {
      startupProbe: { httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 1, failureThreshold: 60 },
    },
  },
];

/** The app's Pod once it has been Ready for 3 s in a row (after a restart the readiness gate and the
 * kubelet's probes settle one after the other). */
async function stablyReady(app: string) {
  let since = 0;
  return eventually(
    `${app} Ready for 3 s`,
    async () => {
      const p = await readyPods(ns, `app=${app}`);
      if (p.length !== 1) {
        since = 0;
        return undefined;
      }
      since ||= Date.now();
      return Date.now() - since >= 3000 ? p[0] : undefined;
    },
    120_000,
  );
}

async function firstReadyPod(app: string) {
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

beforeAll(async () => {
  await installOperator();
  await createNamespace(ns);
  await createFixtures(core, ns);
  for (const v of variants) {
    await apps.createNamespacedDeployment({
      namespace: ns,
      body: appDeployment(
        v.name,
        ns,
        1,
        fixturePod(
          'slow-app.py',
          {
            command: ['python3', '/fixtures/slow-app.py'],
            env: [{ name: 'START_DELAY', value: '8' }],
            readinessProbe: { httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 1 },
            ...v.container,
          },
          { readinessGates: [{ conditionType: READINESS_GATE }] },
        ),
      ),
    });
    await createPolicy(ns, v.name, {
      selector: { matchLabels: { app: v.name } },
      mode: 'http-sf',
      intervalSeconds: 1,
      port: 8080,
    });
  }
});

describe.each(variants)('an app that listens 8 s after it starts ($name)', ({ name }) => {
  it('is never deleted by the operator; it becomes Ready and is checkpointed', async () => {
    const pods = await core.listNamespacedPod({ namespace: ns, labelSelector: `app=${name}` });
    expect(pods.items).toHaveLength(1);
    const uid = pods.items[0]!.metadata!.uid;
    const pod = await firstReadyPod(name);
    // The same Pod that started slowly, not a replacement the operator forced.
    expect(pod.metadata!.uid).toBe(uid);
    expect(pod.status?.containerStatuses?.[0]?.restartCount).toBe(0);
    await eventually('a checkpoint of the Pod', async () =>
      (await policy(ns, name)).status?.checkpoints?.some((c) => c.podUID === uid && !c.orphaned),
    );
    // Nor is a start-up reported as a failed pull: the app was starting, not failing.
    const warnings = await warningEvents(ns, pod.metadata!.name!);
    expect(warnings.filter((e) => e.startsWith('PodFailed') || e.startsWith('PullFailed'))).toEqual([]);
  });

  it('is restored after a crash, while the restarted process takes 8 s to listen again', async () => {
    await stablyReady(name);
    const r = await failoverTrial(ns, `app=${name}`, 'crash');
    expect(r.podAfter).toBe(r.podBefore);
    expect(r.restoredCount).not.toBeNull();
    // Exactly one restore into the new process: a second one would roll back what it did since.
    await new Promise((res) => setTimeout(res, 3000));
    const pod = await core.readNamespacedPod({ name: r.podAfter, namespace: ns });
    expect((await stats(pod.status!.podIP!, 1000))?.restores).toBe(1);
    expect(r.lostUpdates).toBeLessThanOrEqual(MAX_LOST_RESTART);
    expect(r.lostUpdates).toBeGreaterThanOrEqual(-aheadAllowed(r));
    expect((await warningEvents(ns, r.podAfter)).filter((e) => e.startsWith('PodFailed'))).toEqual([]);
  });

  it('is restored on another node after its node is partitioned', async () => {
    await stablyReady(name);
    const r = await failoverTrial(ns, `app=${name}`, 'partition');
    expect(r.nodeAfter).not.toBe(r.nodeBefore);
    expect(r.lostUpdates).toBeLessThanOrEqual(PARTITION_MAX_LOST);
    // Back to the whole cluster for the next test.
    await eventually(
      `${r.nodeBefore} Ready again`,
      async () =>
        (await core.readNode({ name: r.nodeBefore })).status?.conditions?.some(
          (c) => c.type === 'Ready' && c.status === 'True',
        ),
      90_000,
    );
  });
});
