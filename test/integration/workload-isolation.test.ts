// One policy over the Pods of two Deployments: an orphaned copy goes only into a replacement of its own
// Deployment. Before copies carried their workload, the newest orphan went to the newest new Pod of the
// policy: scaling Deployment A down and B up pushed A's state into B's Pod.
import { PatchStrategy, setHeaderOptions, type V1Deployment, type V1Pod } from '@kubernetes/client-node';
import { stats } from '../../harness/failover.js';
import { apps, core, createNamespace, eventually, isReady } from './cluster.js';
import { createPolicy, installOperator, policy } from './operator.js';
import { READINESS_GATE } from '../../src/api/index.js';
import { COUNT_APP_IMAGE } from '../../harness/images.js';

const ns = 'it-workloads';
const image = COUNT_APP_IMAGE;
/** A's counter starts here: a B Pod that counts from anywhere near it got A's state. */
const A_START = 7_000_000;

function deployment(name: string, replicas: number): V1Deployment {
  return {
    metadata: { name, namespace: ns },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name, tier: 'shared' } },
        spec: {
          terminationGracePeriodSeconds: 5,
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
}

async function readyPod(app: string, except: ReadonlySet<string> = new Set()): Promise<V1Pod> {
  return await eventually(
    `a Ready Pod of ${app}`,
    async () => {
      const list = await core.listNamespacedPod({ namespace: ns, labelSelector: `app=${app}` });
      return list.items.find(
        (p) => isReady(p) && !p.metadata?.deletionTimestamp && !except.has(p.metadata!.uid!),
      );
    },
    120_000,
  );
}

async function scale(name: string, replicas: number): Promise<void> {
  await apps.patchNamespacedDeploymentScale(
    { name, namespace: ns, body: { spec: { replicas } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
}

beforeAll(async () => {
  await installOperator();
  await createNamespace(ns);
  await apps.createNamespacedDeployment({ namespace: ns, body: deployment('alpha', 1) });
  await apps.createNamespacedDeployment({ namespace: ns, body: deployment('beta', 0) });
  await createPolicy(ns, 'shared', {
    selector: { matchLabels: { tier: 'shared' } },
    mode: 'http',
    intervalSeconds: 1,
    port: 8080,
  });
});

describe('one policy over two Deployments', () => {
  it("scaling A down and B up never gives B's new Pod A's state; A's next Pod gets it", async () => {
    const a = await readyPod('alpha');
    const res = await fetch(`http://${a.status!.podIP}:8080/state`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ count: A_START }),
    });
    expect(res.status).toBe(200);
    const set = Date.now();
    await eventually('a checkpoint of A taken after its counter was set', async () => {
      const cps = (await policy(ns, 'shared')).status?.checkpoints ?? [];
      return cps.some((c) => c.pod === a.metadata!.name && Date.parse(c.timestamp ?? '') > set + 1000);
    });

    await scale('alpha', 0);
    await eventually(
      "A's Pod gone",
      async () =>
        (await core.listNamespacedPod({ namespace: ns, labelSelector: 'app=alpha' })).items.length === 0,
      120_000,
    );
    await scale('beta', 1);
    const b = await readyPod('beta');
    // Ready means the gate opened: the controller decided. B starts fresh, with nothing restored.
    const sb = await eventually("B's counter", () => stats(b.status!.podIP!, 1000));
    expect(sb.restores).toBe(0);
    expect(sb.count).toBeLessThan(A_START);
    const gate = b.status?.conditions?.find((c) => c.type === READINESS_GATE);
    expect(gate?.reason).toBe('NothingToRestore');

    // A's orphan is still A's: its next Pod gets it.
    await scale('alpha', 1);
    const a2 = await readyPod('alpha', new Set([a.metadata!.uid!]));
    const sa = await eventually("A's restored counter", async () => {
      const st = await stats(a2.status!.podIP!, 1000);
      return st && st.restores >= 1 ? st : undefined;
    });
    expect(sa.restoredCount).toBeGreaterThanOrEqual(A_START);
    // And B kept its own state all along.
    expect((await stats(b.status!.podIP!, 1000))?.restores).toBe(0);
  });
});
