// Whether a restarted app answers before the API shows the restart: a pull in between reads the new
// process's state (docs/how-it-works.md#restarts-the-api-shows-late).
import { Watch, type V1Pod } from '@kubernetes/client-node';
import { injectFault, stats } from '../../harness/failover.js';
import { COUNT_APP_IMAGE } from '../../harness/images.js';
import { NS, sleep, until, type BenchContext } from '../cluster.js';
import type { RaceSample } from '../results.js';

/**
 * The real kubelet's restart race for the count app, and Pod start-up: for each sample a fresh Pod (so the
 * restart back-off does not count) is created and timed to Ready, then its container is SIGKILLed and two
 * moments are taken: when the new process first answers, and when a watch sees restartCount go up.
 * windowMs > 0 means the app answered before the API showed the restart.
 */
export async function restartRace({ core, kubeconfig, log }: BenchContext, samples: number) {
  const results: RaceSample[] = [];
  for (let i = 0; i < samples; i++) {
    const name = `race-${i}`;
    const t0 = performance.now();
    await core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name, namespace: NS },
        spec: {
          terminationGracePeriodSeconds: 1,
          containers: [
            {
              name: 'app',
              image: COUNT_APP_IMAGE,
              readinessProbe: { httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 1 },
            },
          ],
        },
      },
    });
    const pod = await until(
      `${name} Ready`,
      async () => {
        const p = await core.readNamespacedPod({ name, namespace: NS });
        return p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? p : undefined;
      },
      60_000,
    );
    const createToReadyMs = Math.round(performance.now() - t0);
    await sleep(2000);
    const ip = pod.status!.podIP!;
    const before = (await stats(ip, 1000))?.count ?? 0;
    let apiAt = 0;
    const watch = await new Watch(kubeconfig).watch(
      `/api/v1/namespaces/${NS}/pods`,
      { fieldSelector: `metadata.name=${name}` },
      (_type: string, obj: V1Pod) => {
        if (!apiAt && (obj.status?.containerStatuses?.[0]?.restartCount ?? 0) > 0) apiAt = performance.now();
      },
      () => undefined,
    );
    await sleep(300);
    const k0 = performance.now();
    await injectFault('crash', `${NS}/${name}`);
    let answerAt = 0;
    while (!answerAt && performance.now() - k0 < 60_000) {
      const s = await stats(ip, 100);
      if (s && s.count < before) answerAt = performance.now();
      else await sleep(5);
    }
    while (!apiAt && performance.now() - k0 < 60_000) await sleep(5);
    watch.abort();
    const r = {
      createToReadyMs,
      appAnswersMs: Math.round(answerAt - k0),
      apiRestartMs: Math.round(apiAt - k0),
      windowMs: Math.round(apiAt - answerAt),
    };
    log(`race ${i + 1}/${samples}: ${JSON.stringify(r)}`);
    results.push(r);
    await core.deleteNamespacedPod({ name, namespace: NS, gracePeriodSeconds: 0 });
  }
  return results;
}
