// Checkpoint latency per state size: the operator's copy between two helpers against raw copies.
import {
  GROUP,
  HELPER_API,
  helperAudience,
  OPERATOR_NAMESPACE,
  PLURAL,
  VERSION,
} from '../../src/api/index.js';
import type { PullReport } from '../../src/api/index.js';
import { readyPod } from '../../harness/failover.js';
import { createFixtures } from '../../harness/fixture-app.js';
import { helperFetch } from '../../harness/helper-https.js';
import { COUNT_APP_IMAGE } from '../../harness/images.js';
import { deployment, NS, policy, sleep, until, type BenchContext } from '../cluster.js';
import { rawCopy, rawSink } from '../raw-sink.js';
import type { CheckpointResults } from '../results.js';
import { median, quantile } from '../statistics.js';

export async function checkpointLatency(ctx: BenchContext, trials: number): Promise<CheckpointResults> {
  const { core, apps, custom, kubeconfig, log } = ctx;
  // The controller's identity, for the audience of one helper's node (what the controller sends it).
  const tokens = new Map<string, string>();
  const tokenFor = async (node: string) => {
    if (!tokens.has(node))
      tokens.set(
        node,
        (
          await core.createNamespacedServiceAccountToken({
            name: 'pull-state-controller',
            namespace: OPERATOR_NAMESPACE,
            body: { spec: { audiences: [helperAudience(node)] } },
          })
        ).status!.token,
      );
    return tokens.get(node)!;
  };
  await createFixtures(core, NS);
  const out: CheckpointResults = {};
  for (const [label, bytes] of [
    ['1KiB', 1024],
    ['1MiB', 1024 ** 2],
    ['16MiB', 16 * 1024 ** 2],
  ] as const) {
    const name = `size-${label.toLowerCase()}`;
    await apps.createNamespacedDeployment({
      namespace: NS,
      body: deployment(name, {
        image: COUNT_APP_IMAGE,
        gate: false,
        env: { STATE_PADDING_BYTES: String(bytes) },
      }),
    });
    // A policy, so the helpers hold the Pod's copies (they refuse copies of Pods the operator does not
    // protect); its own pulls come once within seconds, then hourly, so they rarely meet a measured one.
    await policy(ctx, name, { intervalSeconds: 3600, maxStateBytes: 64 * 1024 ** 2 });
    const policyUID = (
      (await custom.getNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: NS,
        plural: PLURAL,
        name,
      })) as { metadata: { uid: string } }
    ).metadata.uid;
    const pod = await until(`${name} Ready`, () => readyPod(NS, `app=${name}`));
    const helpers = (
      await core.listNamespacedPod({
        namespace: OPERATOR_NAMESPACE,
        labelSelector: 'app.kubernetes.io/component=helper',
      })
    ).items;
    const target = helpers.find((h) => h.spec?.nodeName !== pod.spec?.nodeName)!;
    const puller = helpers.find((h) => h.spec?.nodeName === pod.spec?.nodeName)!;
    const sink = await rawSink(ctx, target.spec!.nodeName!);
    const source = `http://${pod.status!.podIP}:8080/state`;
    const times: number[] = [];
    const raw: number[] = [];
    const rawTls: number[] = [];
    // What the operator does every interval: the helper of the Pod's node GETs the state and streams it to
    // the helper of another node (a one-off pull through its API; the duration is the helper's own figure).
    // The first pulls (connections, JIT warm-up) are not measured. Operator and raw copies alternate, so
    // both meet the same machine load.
    const warmUp = 10;
    const heldBy = Date.now() + 60_000;
    for (let i = 0; i < warmUp + Math.max(trials * 5, 30); i++) {
      const res = await helperFetch(kubeconfig, `https://${puller.status!.podIP}:9500${HELPER_API}/pulls`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${await tokenFor(puller.spec!.nodeName!)}`,
          'content-type': 'application/json',
        },
        body: JSON.stringify({
          namespace: NS,
          policy: name,
          policyUID,
          pod: pod.metadata!.name!,
          podUID: pod.metadata!.uid!,
          podIP: pod.status!.podIP!,
          port: 8080,
          path: '/state',
          intervalMs: 1000,
          timeoutMs: 30_000,
          maxBytes: 64 * 1024 ** 2,
          restartCount: 0,
          targets: [{ node: target.spec!.nodeName!, url: `https://${target.status!.podIP}:9500` }],
          lastSequence: 0,
        }),
      });
      if (!res.ok) throw new Error(`helper answered ${res.status}: ${await res.text()}`);
      const r = (await res.json()) as PullReport;
      // Until the controller has told the target to hold the new Pod, the target refuses its copies.
      if (!r.ok && i < warmUp && Date.now() < heldBy && /NotHeld/.test(r.message)) {
        i--;
        await new Promise((res) => setTimeout(res, 500));
        continue;
      }
      if (!r.ok) throw new Error(`pull failed: ${r.message}`);
      const rawMs = await rawCopy(source, `${sink.url}/copy-${i % 3}`);
      const rawTlsMs = await rawCopy(source, `${sink.tlsUrl}/tls-${i % 3}`, sink.tls);
      if (i >= warmUp) {
        times.push(r.durationMs);
        raw.push(rawMs);
        rawTls.push(rawTlsMs);
      }
    }
    const p50Ms = median(times);
    const rawP50Ms = median(raw);
    const rawTlsP50Ms = median(rawTls);
    out[label] = {
      p50Ms,
      p90Ms: quantile(times, 0.9),
      rawP50Ms,
      ratio: Math.round((p50Ms / rawP50Ms) * 100) / 100,
      rawTlsP50Ms,
      ratioTls: Math.round((p50Ms / rawTlsP50Ms) * 100) / 100,
    };
    sink.tls.destroy();
    log(
      `checkpoint ${label}: p50 ${p50Ms} ms, raw baseline p50 ${rawP50Ms} ms (x${out[label].ratio}), raw over TLS ${rawTlsP50Ms} ms (x${out[label].ratioTls})`,
    );
    await apps.deleteNamespacedDeployment({ name, namespace: NS });
    await core.deleteNamespacedPod({ name: 'raw-sink', namespace: NS, gracePeriodSeconds: 0 });
    await until('raw sink gone', async () => !(await readyPod(NS, 'app=raw-sink')));
    await sleep(1000);
  }
  return out;
}
