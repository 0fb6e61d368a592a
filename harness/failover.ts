// One failover trial with the count app, shared by the end-to-end tests and `npm run bench`: inject a fault,
// time it until a Pod of the Deployment is Ready again with its counter restored, and count lost updates.
import { get } from 'node:http';
import { CoreV1Api, KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { FENCE_TAINT } from '../src/api/index.js';
import { fault } from '../tools/localcluster/src/cluster.js';

export type Fault = 'crash' | 'delete' | 'partition';

export interface TrialResult {
  fault: Fault;
  faultToReadyMs: number;
  /**
   * Count-app updates (10 per second) lost: the app's last value minus the value restored. After a delete
   * the app counts on until the kubelet delivers SIGTERM, so its last value is the one it stopped at.
   */
  lostUpdates: number;
  countAtFault: number;
  /** The last sample before the fault was injected (for a delete: before the API request). */
  countBeforeFault: number;
  /** How old that sample was at the fault: the app may have counted on meanwhile (see aheadAllowed). */
  sampleAgeMs: number;
  restoredCount: number | null;
  podBefore: string;
  podAfter: string;
  nodeBefore: string;
  nodeAfter: string;
}

export interface CountStats {
  count: number;
  restores: number;
  restoredCount: number | null;
  counting: boolean;
}

let client: CoreV1Api | undefined;
/** Made on first use: the kubeconfig exists only once the local cluster is up. */
function core(): CoreV1Api {
  if (!client) {
    const kc = new KubeConfig();
    kc.loadFromFile('.local/kubeconfig');
    client = kc.makeApiClient(CoreV1Api);
  }
  return client;
}

/** Injects a fault in this process (the CLI would add a second of tsx start-up to every trial). */
export async function injectFault(action: 'crash' | 'partition' | 'heal', target: string): Promise<void> {
  await fault(action, target);
}

/**
 * The count app's counters, or undefined if it does not answer in time. A new connection every time: a
 * kept-alive socket to a killed or partitioned process would hang the samples that follow.
 */
export function stats(ip: string, timeoutMs = 300): Promise<CountStats | undefined> {
  return new Promise((resolve) => {
    const req = get({ host: ip, port: 8080, path: '/stats', agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', () => resolve(undefined));
      res.on('end', () => {
        try {
          resolve(
            res.statusCode === 200 ? (JSON.parse(Buffer.concat(chunks).toString()) as CountStats) : undefined,
          );
        } catch {
          resolve(undefined);
        }
      });
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
  });
}

/**
 * Count-app updates (10 per second) a partition may lose at interval 1 s: an interval with the pull timer's
 * ±5 % jitter (10.5), the pull that was on its way to another node when the link went down (its copy never
 * arrives, so the one restored is the one before), and one sampling tick. Seen: 12 and 13.
 */
export const PARTITION_MAX_LOST = 13;

/**
 * How far a restored counter may be ahead of the last sample before the fault (a negative `lostUpdates`): the
 * updates (10 per second) the app made between that sample and the fault, plus one tick. A busy machine can
 * make that sample half a second old, and the last checkpoint may be newer than it.
 */
export function aheadAllowed(r: TrialResult): number {
  return 1 + Math.ceil(r.sampleAgeMs / 100);
}

export const isReady = (p: V1Pod) =>
  !p.metadata?.deletionTimestamp &&
  (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');

export async function readyPod(namespace: string, selector: string): Promise<V1Pod | undefined> {
  const pods = await core().listNamespacedPod({ namespace, labelSelector: selector });
  return pods.items.find(isReady);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The Ready Pod a trial starts from. A Pod may be briefly not Ready after the previous trial (the kubelet's
 * probes and the readiness gate settle one after the other): wait a little, and say which condition is
 * False if it stays so.
 */
async function settledReadyPod(namespace: string, selector: string): Promise<V1Pod> {
  for (const deadline = Date.now() + 20_000; Date.now() < deadline; await sleep(200)) {
    const pod = await readyPod(namespace, selector);
    if (pod) return pod;
  }
  const pods = await core().listNamespacedPod({ namespace, labelSelector: selector });
  const why = pods.items.map((p) => {
    const conditions = (p.status?.conditions ?? [])
      .filter((c) => c.status !== 'True')
      .map((c) => `${c.type}=${c.status}${c.reason ? ` (${c.reason}: ${c.message ?? ''})` : ''}`);
    const restarts = p.status?.containerStatuses?.map((c) => c.restartCount).join(',');
    return `${p.metadata?.name}${p.metadata?.deletionTimestamp ? ' terminating' : ''} restarts ${restarts}: ${conditions.join('; ')}`;
  });
  throw new Error(
    `no Ready Pod for ${selector} in ${namespace} within 20 s: ${why.join(' | ') || 'no Pods'}`,
  );
}

/** Every node Ready and without the operator's fence: the cluster is whole again after a partition. */
export async function nodesHealed(): Promise<boolean> {
  return (await core().listNode()).items.every(
    (n) =>
      n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') &&
      !(n.spec?.taints ?? []).some((t) => t.key === FENCE_TAINT),
  );
}

/**
 * Runs one trial against the single Ready Pod selected by `selector`. `hook` runs right after the fault
 * (e.g. to kill the controller leader as well).
 */
export async function failoverTrial(
  namespace: string,
  selector: string,
  fault: Fault,
  o: { timeoutMs?: number; hook?: () => Promise<void>; plain?: boolean } = {},
): Promise<TrialResult> {
  const before = await settledReadyPod(namespace, selector);
  const ip = before.status!.podIP!;
  const name = before.metadata!.name!;
  const node = before.spec!.nodeName!;
  const beforeUID = before.metadata!.uid;

  // Sample the counter until the fault, so "value at the fault" is at most one sample old.
  let first: CountStats | undefined;
  for (let tries = 0; !first; tries++) {
    if (tries === 50) throw new Error(`the count app in ${name} (${ip}) does not answer /stats`);
    first = await stats(ip, 1000);
    if (!first) await sleep(100);
  }
  let last = first.count;
  let sampledAt = performance.now();
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const s = await stats(ip, 200);
      if (s) {
        last = s.count;
        sampledAt = performance.now();
      }
      await sleep(20);
    }
  })();
  await sleep(200);
  const t0 = performance.now();
  const countBeforeFault = last;
  const sampleAgeMs = Math.round(t0 - sampledAt);
  // Lost updates are only meaningful against a fresh sample of the value at the fault.
  if (t0 - sampledAt > 1000)
    throw new Error(`no sample of ${name}'s counter in the last second before the fault`);
  if (fault === 'crash') await injectFault('crash', `${namespace}/${name}`);
  else if (fault === 'partition') await injectFault('partition', node);
  else await core().deleteNamespacedPod({ name, namespace });
  if (fault !== 'delete') {
    sampling = false; // the old process is dead or unreachable: the last sample is the value at the fault
  }
  await o.hook?.();

  // Whatever happens next, a partitioned node is healed: later trials and tests need the whole cluster.
  try {
    return await awaitRestored();
  } finally {
    sampling = false;
    await sampler;
    if (fault === 'partition') await injectFault('heal', node);
  }

  async function awaitRestored(): Promise<TrialResult> {
    const deadline = Date.now() + (o.timeoutMs ?? 120_000);
    let after: { pod: V1Pod; s: CountStats } | undefined;
    while (!after) {
      if (Date.now() > deadline)
        throw new Error(`${fault}: no restored Ready Pod within ${o.timeoutMs ?? 120_000} ms`);
      const pod = await readyPod(namespace, selector).catch(() => undefined);
      const sameAndRestarted = pod?.metadata?.uid === beforeUID;
      if (pod && (!sameAndRestarted || fault === 'crash')) {
        const s = await stats(pod.status!.podIP!);
        // A crashed process comes back with fresh counters, so any restore seen now is the new one.
        if (o.plain) {
          // Without the operator: Ready again means a fresh process (its counter starts from zero).
          if (s && (!sameAndRestarted || s.count < last)) after = { pod, s };
        } else if (s && s.restores >= 1 && s.restoredCount !== null) after = { pod, s };
      }
      if (!after) await sleep(50);
    }
    const faultToReadyMs = Math.round(performance.now() - t0);
    sampling = false;
    await sampler;
    return {
      fault,
      faultToReadyMs,
      lostUpdates: after.s.restoredCount === null ? last : last - after.s.restoredCount,
      countAtFault: last,
      countBeforeFault,
      sampleAgeMs,
      restoredCount: after.s.restoredCount,
      podBefore: name,
      podAfter: after.pod.metadata!.name!,
      nodeBefore: node,
      nodeAfter: after.pod.spec!.nodeName!,
    };
  }
}
