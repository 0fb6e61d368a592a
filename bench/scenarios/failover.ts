// Fault to Ready per fault, with the operator (failover) or without it (baseline: plain Kubernetes).
import { failoverTrial, nodesHealed, readyPod } from '../../harness/failover.js';
import { COUNT_APP_IMAGE } from '../../harness/images.js';
import { placeBesideLeader } from '../../harness/leader-placement.js';
import { deployment, NS, policy, sleep, until, type BenchContext } from '../cluster.js';
import type { FailoverResults, Fault } from '../results.js';

export async function failover(
  ctx: BenchContext,
  trials: number,
  withOperator: boolean,
  faults: readonly Fault[],
  partitionTrials = trials,
): Promise<FailoverResults> {
  const { core, apps, kubeconfig, log } = ctx;
  const name = withOperator ? 'count' : 'plain';
  await apps.createNamespacedDeployment({
    namespace: NS,
    body: deployment(name, { image: COUNT_APP_IMAGE, gate: withOperator }),
  });
  if (withOperator) await policy(ctx, name, { mode: 'http-sf', intervalSeconds: 1 });
  const results: FailoverResults = {
    crash: { ms: [], lost: [] },
    delete: { ms: [], lost: [] },
    partition: { ms: [], lost: [] },
    'leader-partition': { ms: [], lost: [] },
  };
  for (const fault of faults) {
    // Without the operator there is no leader: plain Kubernetes has nothing to place.
    if (fault === 'leader-partition' && !withOperator) continue;
    const partition = fault === 'partition' || fault === 'leader-partition';
    for (let i = 0; i < (partition ? partitionTrials : trials); i++) {
      if (fault === 'leader-partition') await placeBesideLeader(kubeconfig, NS, name, `app=${name}`, log);
      const pod = await until(`${name} Ready`, () => readyPod(NS, `app=${name}`), 300_000);
      await sleep(2500); // at least one checkpoint of this Pod
      const r = await failoverTrial(NS, `app=${name}`, partition ? 'partition' : fault, {
        timeoutMs: withOperator ? 120_000 : 400_000,
        plain: !withOperator,
      });
      results[fault].ms.push(r.faultToReadyMs);
      results[fault].lost.push(r.lostUpdates);
      log(
        `${withOperator ? 'operator' : 'baseline'} ${fault} #${i + 1}: ready after ${r.faultToReadyMs} ms, lost ${r.lostUpdates} updates (pod ${pod.metadata!.name} -> ${r.podAfter})`,
      );
      // The kubelet backs off restarting a container that keeps crashing (1 s doubling here, 10 s in
      // Kubernetes): crash trials on one Pod would measure that back-off. Each trial gets a fresh Pod.
      if (fault === 'crash') {
        await core.deleteNamespacedPod({ name: r.podAfter, namespace: NS });
        await until('the crashed Pod replaced', async () => {
          const p = await readyPod(NS, `app=${name}`);
          return p && p.metadata!.name !== r.podAfter;
        });
      }
      if (partition) await until('all nodes Ready and unfenced', nodesHealed);
    }
  }
  await apps.deleteNamespacedDeployment({ name, namespace: NS });
  return results;
}
