// The operator's own cost with many protected Pods, read from its /metrics over a quiet 60 s window.
import { cpus, loadavg } from 'node:os';
import { GROUP, HELPER_HEALTH_PORT, OPERATOR_NAMESPACE, PLURAL, VERSION } from '../../src/api/index.js';
import { isReady } from '../../harness/failover.js';
import { appDeployment } from '../../harness/deployment.js';
import { createFixtures, fixturePod } from '../../harness/fixture-app.js';
import { kubectl, NS, policy, sleep, until, type BenchContext } from '../cluster.js';
import { histogramQuantile, metric } from '../prometheus.js';
import type { ScaleResult } from '../results.js';

/** The operator's Pods with their restart counts, and the leader: changes when any of them restarts. */
function operatorProcesses(): string {
  const pods = kubectl(
    'get',
    'pods',
    '-n',
    OPERATOR_NAMESPACE,
    '-o',
    'jsonpath={range .items[*]}{.metadata.name}={.status.containerStatuses[0].restartCount},{end}',
  );
  const leader = kubectl(
    'get',
    'lease',
    '-n',
    OPERATOR_NAMESPACE,
    'pull-state-operator-leader',
    '-o',
    'jsonpath={.spec.holderIdentity}',
  );
  return `${pods}|${leader}`;
}

export async function scale(ctx: BenchContext, pods: number, stateBytes: number): Promise<ScaleResult> {
  const { core, apps, custom, log } = ctx;
  // A name of its own per run: a policy created again under an earlier run's name would take over that run's
  // copies (still within their retention) and restore them into these Pods.
  const name = `many-${stateBytes}-${Date.now().toString(36)}`;
  await createFixtures(core, NS);
  await apps.createNamespacedDeployment({
    namespace: NS,
    body: appDeployment(
      name,
      NS,
      pods,
      fixturePod('state-app.mjs', {
        env: [{ name: 'STATE_BYTES', value: String(stateBytes) }],
        // The kubelet's default period: 100 readiness probes a second (with their timeouts under load) kept
        // 92 of 100 Pods not Ready for minutes on 2 cores. The operator's pulls run at 1 s whatever this is.
        readinessProbe: { httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 10, timeoutSeconds: 5 },
      }),
    ),
  });
  await policy(ctx, name, { mode: 'http', intervalSeconds: 1 });
  await until(
    `${pods} Pods checkpointed`,
    async () => {
      const p = (await custom.getNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: NS,
        plural: PLURAL,
        name,
      })) as { status?: { checkpointSummary?: { pods?: number; withoutCheckpoint?: number } } };
      // Every Pod checkpointed once; whether later pulls keep up is what the run measures.
      const sum = p.status?.checkpointSummary;
      return (sum?.pods ?? 0) >= pods && sum?.withoutCheckpoint === 0;
    },
    600_000,
  );
  // Starting 100 app processes saturates a 2-core machine for a while: measure once every Pod is Ready and
  // the load has settled, and again if the leader changed or an operator process restarted meanwhile.
  await until(
    `${pods} Pods Ready`,
    async () =>
      (await core.listNamespacedPod({ namespace: NS, labelSelector: `app=${name}` })).items.filter(isReady)
        .length >= pods,
    600_000,
  );
  await until('load settled', async () => loadavg()[0]! < cpus().length * 4, 300_000).catch(() =>
    log(`load still ${loadavg()[0]!.toFixed(1)} after 5 min; measuring anyway`),
  );
  let result: ScaleResult | undefined;
  for (let attempt = 1; attempt <= 3 && !result; attempt++) {
    const before = operatorProcesses();
    const lease = kubectl(
      'get',
      'lease',
      '-n',
      OPERATOR_NAMESPACE,
      'pull-state-operator-leader',
      '-o',
      'jsonpath={.spec.holderIdentity}',
    );
    const ip = kubectl('get', 'pod', '-n', OPERATOR_NAMESPACE, lease, '-o', 'jsonpath={.status.podIP}');
    const helperIPs = (
      await core.listNamespacedPod({
        namespace: OPERATOR_NAMESPACE,
        labelSelector: 'app.kubernetes.io/component=helper',
      })
    ).items.map((h) => h.status!.podIP!);
    const scrape = async (host: string, port: number) =>
      (await fetch(`http://${host}:${port}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
    const sample = async () => ({
      controller: await scrape(ip, 9090),
      helpers: await Promise.all(helperIPs.map((h) => scrape(h, HELPER_HEALTH_PORT))),
    });
    const a = await sample();
    const t0 = Date.now();
    await sleep(60_000);
    const b = await sample();
    if (operatorProcesses() !== before) {
      log(
        `scale: an operator process restarted or the leader changed during the window (attempt ${attempt}); again`,
      );
      continue;
    }
    const secs = (Date.now() - t0) / 1000;
    const cores = (x: string, y: string) =>
      (metric(y, 'process_cpu_seconds_total') - metric(x, 'process_cpu_seconds_total')) / secs;
    const helperCores = a.helpers.map((h, i) => cores(h, b.helpers[i]!));
    // A series a process never incremented is absent: it counts as 0.
    const rate = (text: string, from: string, to: string) =>
      ((metric(to, text) || 0) - (metric(from, text) || 0)) / secs;
    const helperRate = (text: string) =>
      a.helpers.reduce((sum, h, i) => sum + rate(text, h, b.helpers[i]!), 0);
    result = {
      pods,
      stateBytes,
      loadAverage: Math.round(loadavg()[0]! * 10) / 10,
      cores: cores(a.controller, b.controller),
      rssMiB: Math.round(metric(b.controller, 'process_resident_memory_bytes') / 1024 ** 2),
      helperCoresMax: Math.max(...helperCores),
      helperRssMiBMax: Math.max(
        ...b.helpers.map((h) => Math.round(metric(h, 'process_resident_memory_bytes') / 1024 ** 2)),
      ),
      checkpointP50Ms:
        histogramQuantile(a.controller, b.controller, 'pullstate_pull_duration_seconds', 0.5) * 1000,
      checkpointP99Ms:
        histogramQuantile(a.controller, b.controller, 'pullstate_pull_duration_seconds', 0.99) * 1000,
      statusWritesPerPolicyPerMinute: rate('pullstate_status_writes_total', a.controller, b.controller) * 60,
      pullsPerSecond: helperRate('pullstate_helper_pulls_total\\{result="Succeeded"\\}'),
      failedPullsPerSecond: helperRate('pullstate_helper_pulls_total\\{result="failure"\\}'),
    };
  }
  if (!result) throw new Error('scale: no quiet 60 s window in 3 attempts');
  log(`scale: ${JSON.stringify(result)}`);
  await apps.deleteNamespacedDeployment({ name, namespace: NS });
  await until(
    'scale Pods gone',
    async () =>
      (await core.listNamespacedPod({ namespace: NS, labelSelector: `app=${name}` })).items.length === 0,
    300_000,
  );
  return result;
}
