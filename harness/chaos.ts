// A seeded random run of faults against two replicas of the count app (no process id header, http-sf, 1 s),
// shared by `npm run chaos` and the chaos integration test. After every fault it checks the three promises
// that matter on a real cluster: the failed Pod's own state is back in a Ready Pod within the loss bound;
// nothing is restored into a Pod that did not fail; no node is fenced that was not faulted.
import {
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  Watch,
  type V1Node,
  type V1Pod,
} from '@kubernetes/client-node';
import { FENCE_TAINT, OPERATOR_NAMESPACE } from '../src/api/index.js';
import { fault as clusterFault } from '../tools/localcluster/src/cluster.js';
import { isReady, PARTITION_MAX_LOST, stats, type CountStats } from './failover.js';
import { seededRandom } from './seeded-random.js';
import { COUNT_APP_IMAGE } from './images.js';

export const FAULT_KINDS = ['crash', 'delete', 'partition', 'power', 'leader', 'helper'] as const;
export type ChaosFault = (typeof FAULT_KINDS)[number];

/** Faults that take the app's process or node away: its state must come back. */
const APP_FAULTS = new Set<ChaosFault>(['crash', 'delete', 'partition', 'power']);

/** One interval of updates (10/s at 1 s) and a sampling tick; a lost link may also cost the pull in flight. */
const LOSS_BOUND: Record<ChaosFault, number> = {
  crash: 11,
  delete: 11,
  partition: PARTITION_MAX_LOST,
  power: PARTITION_MAX_LOST,
  leader: 0,
  helper: 0,
};

export interface FaultOutcome {
  n: number;
  kind: ChaosFault;
  pod: string;
  node: string;
  /** Fault to a Ready Pod with the failed Pod's state (app faults), or to checkpoints resuming. */
  readyMs: number;
  lost?: number;
  violations: string[];
}

export interface ChaosReport {
  seed: number;
  faults: FaultOutcome[];
  survived: number;
  worstLost: number;
  readyMsByKind: Record<string, { n: number; p50: number; max: number }>;
}

export interface ChaosOptions {
  faults: number;
  seed: number;
  namespace: string;
  kinds?: readonly ChaosFault[];
  log?: (line: string) => void;
}

/**
 * The fault plan of a seed: which kind, and which of the two Pods (by index in name order). Every kind comes
 * once, in a shuffled order, before kinds are drawn freely: a short run still covers them all.
 */
export function chaosPlan(seed: number, n: number, kinds: readonly ChaosFault[] = FAULT_KINDS) {
  const rand = seededRandom(seed);
  const first = [...kinds];
  for (let i = first.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [first[i], first[j]] = [first[j]!, first[i]!];
  }
  return Array.from({ length: n }, (_, i) => ({
    kind: i < first.length ? first[i]! : kinds[Math.floor(rand() * kinds.length)]!,
    target: rand() < 0.5 ? 0 : 1,
  }));
}

/** Restarts of a Pod's app container (the count app's only one). */
const appRestarts = (pod: V1Pod) =>
  pod.status?.containerStatuses?.find((c) => c.name === 'app')?.restartCount ?? 0;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)] ?? 0;

export const APP = 'chaos-app';

/** The count app as two replicas, http-sf at 1 s, gated until restored; its own namespace. */
export function chaosManifests(namespace: string): { deployment: object; policy: object } {
  return {
    deployment: {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: APP, namespace },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: APP } },
        template: {
          metadata: { labels: { app: APP } },
          spec: {
            readinessGates: [{ conditionType: 'pullstate.hitachienergy.com/restored' }],
            terminationGracePeriodSeconds: 5,
            // One replica per node: a node fault hits one Pod, and the other is the witness that must be
            // left alone.
            affinity: {
              podAntiAffinity: {
                requiredDuringSchedulingIgnoredDuringExecution: [
                  { labelSelector: { matchLabels: { app: APP } }, topologyKey: 'kubernetes.io/hostname' },
                ],
              },
            },
            containers: [
              {
                name: 'app',
                image: COUNT_APP_IMAGE,
                ports: [{ name: 'http', containerPort: 8080 }],
                readinessProbe: { httpGet: { path: '/readyz', port: 'http' }, periodSeconds: 1 },
              },
            ],
          },
        },
      },
    },
    policy: {
      apiVersion: 'pullstate.hitachienergy.com/v1alpha1',
      kind: 'PullStatePolicy',
      metadata: { name: APP, namespace },
      spec: { selector: { matchLabels: { app: APP } }, mode: 'http-sf', intervalSeconds: 1, port: 8080 },
    },
  };
}

export class Chaos {
  private readonly core: CoreV1Api;
  private readonly apps: AppsV1Api;
  private readonly watches: AbortController[] = [];
  /**
   * Fence taints seen on a node that no fault has taken down, from the first fault on (also while the
   * cluster settles between faults); each fault's check takes the ones seen since the previous check.
   */
  private wrongFences: string[] = [];
  /** The node the current node fault took down: its fence is expected, until it is whole again. */
  private faultedNode: string | undefined;
  /** App Pods (by UID) that got a deletion since the current fault began. */
  private deleted = new Set<string>();
  /** A watch that ended was started again; if it could not be, every later check is void. */
  private watchLost: string | undefined;

  constructor(
    private readonly kc: KubeConfig,
    private readonly o: ChaosOptions,
  ) {
    this.core = kc.makeApiClient(CoreV1Api);
    this.apps = kc.makeApiClient(AppsV1Api);
  }

  private log(line: string): void {
    this.o.log?.(line);
  }

  async run(): Promise<ChaosReport> {
    await this.watch();
    const outcomes: FaultOutcome[] = [];
    try {
      const plan = chaosPlan(this.o.seed, this.o.faults, this.o.kinds);
      for (const [i, step] of plan.entries()) {
        const outcome = await this.one(i + 1, step.kind, step.target);
        outcomes.push(outcome);
        this.log(
          `fault ${i + 1}/${plan.length} ${step.kind} ${outcome.pod} on ${outcome.node}: ${outcome.readyMs} ms` +
            (outcome.lost !== undefined ? `, lost ${outcome.lost}` : '') +
            (outcome.violations.length ? ` VIOLATIONS: ${outcome.violations.join('; ')}` : ''),
        );
      }
    } finally {
      for (const w of this.watches) w.abort();
    }
    const byKind: ChaosReport['readyMsByKind'] = {};
    for (const kind of FAULT_KINDS) {
      const ms = outcomes.filter((o) => o.kind === kind).map((o) => o.readyMs);
      if (ms.length) byKind[kind] = { n: ms.length, p50: median(ms), max: Math.max(...ms) };
    }
    return {
      seed: this.o.seed,
      faults: outcomes,
      survived: outcomes.filter((o) => o.violations.length === 0).length,
      worstLost: Math.max(0, ...outcomes.map((o) => o.lost ?? 0)),
      readyMsByKind: byKind,
    };
  }

  private async watch(): Promise<void> {
    await this.keepWatching('/api/v1/nodes', (_t, node: V1Node) => {
      const name = node.metadata!.name!;
      if ((node.spec?.taints ?? []).some((t) => t.key === FENCE_TAINT) && name !== this.faultedNode)
        this.wrongFences.push(name);
    });
    await this.keepWatching(`/api/v1/namespaces/${this.o.namespace}/pods`, (type, pod: V1Pod) => {
      if (type === 'DELETED' || pod.metadata?.deletionTimestamp) this.deleted.add(pod.metadata!.uid!);
    });
  }

  /**
   * A watch that the API server ends (its timeout, a restart) starts again, so no check passes for want of
   * events; the re-list's ADDED events see the current state again.
   */
  private async keepWatching<T>(path: string, onEvent: (type: string, obj: T) => void): Promise<void> {
    const start = async (): Promise<void> => {
      const ctl = await new Watch(this.kc).watch(path, {}, onEvent, () => {
        if (this.watches.includes(ctl) && !ctl.signal.aborted)
          void start().catch((err: unknown) => (this.watchLost = `${path}: ${String(err)}`));
      });
      this.watches.push(ctl);
    };
    await start();
  }

  private async appPods(): Promise<V1Pod[]> {
    const list = await this.core.listNamespacedPod({
      namespace: this.o.namespace,
      labelSelector: `app=${APP}`,
    });
    return list.items.filter(isReady).sort((a, b) => a.metadata!.name!.localeCompare(b.metadata!.name!));
  }

  /** Two Ready Pods, each checkpointed since it became Ready, every node Ready and unfenced. */
  private async settled(): Promise<V1Pod[]> {
    const deadline = Date.now() + 180_000;
    for (;;) {
      const pods = await this.appPods();
      const nodes = (await this.core.listNode()).items;
      const broken = nodes.flatMap((n) => {
        const why = [];
        if (!n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
          why.push('not Ready');
        if ((n.spec?.taints ?? []).some((t) => t.key === FENCE_TAINT)) why.push('fenced');
        return why.length ? [`${n.metadata!.name} ${why.join(' and ')}`] : [];
      });
      const whole = broken.length === 0;
      if (pods.length === 2 && whole) {
        const seen = await Promise.all(pods.map((p) => stats(p.status!.podIP!, 1000)));
        if (seen.every((s) => s?.counting)) {
          await sleep(2500); // two pulls of each at 1 s: both have a fresh checkpoint
          return pods;
        }
      }
      if (Date.now() > deadline)
        throw new Error(
          `the app did not settle within 180 s: ${pods.length} Ready Pods; ` +
            (whole ? 'every node Ready and unfenced' : `nodes not whole: ${broken.join(', ')}`),
        );
      await sleep(500);
    }
  }

  private async one(n: number, kind: ChaosFault, target: number): Promise<FaultOutcome> {
    const pods = await this.settled();
    // Whole again (Ready and unfenced): a fence of the previous fault's node from now on is a wrong one.
    this.faultedNode = undefined;
    const victim = pods[target]!;
    const other = pods[1 - target]!;
    const node = victim.spec!.nodeName!;
    const otherBefore = await stats(other.status!.podIP!, 1000);
    const otherRestarts = appRestarts(other);
    this.deleted.clear();
    const violations: string[] = [];
    // Fences seen while the cluster settled after the previous fault count against this one's record.
    for (const f of this.wrongFences.splice(0)) violations.push(`node ${f} was fenced, it was not faulted`);
    if (kind === 'partition' || kind === 'power') this.faultedNode = node;
    const outcome: FaultOutcome = { n, kind, pod: victim.metadata!.name!, node, readyMs: 0, violations };
    if (APP_FAULTS.has(kind)) {
      const existed = new Set(
        (await this.core.listNamespacedPod({ namespace: this.o.namespace })).items.map(
          (p) => p.metadata!.uid!,
        ),
      );
      const r = await this.appFault(kind, victim, existed);
      outcome.readyMs = r.readyMs;
      outcome.lost = r.lost;
      if (r.lost > LOSS_BOUND[kind])
        violations.push(
          `lost ${r.lost} updates, bound ${LOSS_BOUND[kind]} (restored ${r.restored}, at fault ${r.last})`,
        );
      if (r.lost < -r.ahead) violations.push(`restored ${r.restored} is ahead of the fault's ${r.last}`);
    } else outcome.readyMs = await this.controlFault(kind, node, pods, violations);
    // The Pod that did not fail keeps its process and its state.
    const otherAfter = await stats(other.status!.podIP!, 2000);
    const otherNow = await this.core
      .readNamespacedPod({ name: other.metadata!.name!, namespace: this.o.namespace })
      .catch(() => undefined);
    if (this.deleted.has(other.metadata!.uid!)) violations.push(`Pod ${other.metadata!.name} was deleted`);
    else if (!otherBefore || !otherAfter)
      violations.push(`${other.metadata!.name}, which did not fail, does not answer /stats`);
    else if (otherNow && appRestarts(otherNow) !== otherRestarts)
      violations.push(`${other.metadata!.name}'s app container restarted, it was not faulted`);
    else if (otherAfter.restores !== otherBefore.restores)
      violations.push(`state restored into ${other.metadata!.name}, which did not fail`);
    else if (otherBefore && otherAfter && otherAfter.count < otherBefore.count)
      violations.push(
        `${other.metadata!.name}'s counter went back from ${otherBefore.count} to ${otherAfter.count}`,
      );
    for (const f of this.wrongFences.splice(0)) violations.push(`node ${f} was fenced, it was not faulted`);
    if (this.watchLost) violations.push(`a watch ended and could not be started again: ${this.watchLost}`);
    return outcome;
  }

  /**
   * An app fault: the victim's counter is sampled up to the fault; the state that comes back in a Ready Pod
   * (the same one after a crash, a new one otherwise) is compared with the last sample.
   */
  private async appFault(kind: ChaosFault, victim: V1Pod, existed: Set<string>) {
    const ip = victim.status!.podIP!;
    const node = victim.spec!.nodeName!;
    const uid = victim.metadata!.uid!;
    let last = (await stats(ip, 1000))?.count ?? 0;
    let sampledAt = performance.now();
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const s = await stats(ip, 200);
        if (s && sampling) {
          last = s.count;
          sampledAt = performance.now();
        }
        await sleep(20);
      }
    })();
    await sleep(300);
    const t0 = performance.now();
    const ahead = 1 + Math.ceil((t0 - sampledAt) / 100);
    const name = `${this.o.namespace}/${victim.metadata!.name}`;
    if (kind === 'crash') await clusterFault('crash', name);
    else if (kind === 'partition') await clusterFault('partition', node);
    else if (kind === 'power') await clusterFault('stop', node);
    else await this.core.deleteNamespacedPod({ name: victim.metadata!.name!, namespace: this.o.namespace });
    // A deleted Pod serves its grace period and counts on until SIGTERM; a dead one says nothing more.
    if (kind !== 'delete') sampling = false;
    try {
      const deadline = Date.now() + 120_000;
      for (;;) {
        if (Date.now() > deadline)
          throw new Error(`${kind} of ${name}: no Ready Pod with its state within 120 s`);
        const back = await this.restoredPod(uid, kind === 'crash', existed);
        if (back) {
          const readyMs = Math.round(performance.now() - t0);
          sampling = false;
          await sampler;
          return { readyMs, lost: last - back.restoredCount!, restored: back.restoredCount!, last, ahead };
        }
        await sleep(50);
      }
    } finally {
      sampling = false;
      await sampler;
      if (kind === 'partition') await clusterFault('heal', node);
      if (kind === 'power') await clusterFault('start', node);
    }
  }

  /**
   * The Pod that took the failed one's state: after a crash the same Pod, whose new process counts its
   * restores from 0; otherwise a Pod that did not exist before the fault.
   */
  private async restoredPod(
    uid: string,
    crash: boolean,
    existed: Set<string>,
  ): Promise<CountStats | undefined> {
    for (const p of await this.appPods()) {
      const candidate = crash ? p.metadata!.uid === uid : !existed.has(p.metadata!.uid!);
      if (!candidate) continue;
      const s = await stats(p.status!.podIP!, 300);
      if (s && s.restores >= 1 && s.restoredCount !== null) return s;
    }
    return undefined;
  }

  /** The leader or a helper deleted: nothing may be restored or deleted; checkpoints resume. */
  private async controlFault(kind: ChaosFault, node: string, pods: V1Pod[], violations: string[]) {
    const t0 = performance.now();
    const before = await Promise.all(pods.map((p) => stats(p.status!.podIP!, 1000)));
    if (kind === 'leader') {
      const lease = await this.kc
        .makeApiClient(CoordinationV1Api)
        .readNamespacedLease({ name: 'pull-state-operator-leader', namespace: OPERATOR_NAMESPACE });
      const holder = lease.spec?.holderIdentity;
      if (holder) await this.core.deleteNamespacedPod({ name: holder, namespace: OPERATOR_NAMESPACE });
    } else {
      const helpers = await this.core.listNamespacedPod({
        namespace: OPERATOR_NAMESPACE,
        labelSelector: 'app.kubernetes.io/component=helper',
      });
      const helper = helpers.items.find((h) => h.spec?.nodeName === node && !h.metadata?.deletionTimestamp);
      if (helper)
        await this.core.deleteNamespacedPod({ name: helper.metadata!.name!, namespace: OPERATOR_NAMESPACE });
    }
    // Back to normal: every operator Pod Ready again (2 controllers, a helper per node).
    const nodes = (await this.core.listNode()).items.length;
    const deadline = Date.now() + 120_000;
    for (;;) {
      const ops = await this.core.listNamespacedPod({ namespace: OPERATOR_NAMESPACE });
      const ready = ops.items.filter(isReady);
      const helpers = ready.filter((p) => p.metadata?.labels?.['app.kubernetes.io/component'] === 'helper');
      const ctrls = ready.filter((p) => p.metadata?.labels?.['app.kubernetes.io/component'] === 'controller');
      if (helpers.length === nodes && ctrls.length === 2) break;
      if (Date.now() > deadline) {
        violations.push(
          `operator not back within 120 s (${helpers.length} helpers, ${ctrls.length} controllers)`,
        );
        break;
      }
      await sleep(250);
    }
    const readyMs = Math.round(performance.now() - t0);
    await sleep(3000); // a few more intervals: a wrong restore or delete would show now
    for (const [i, p] of pods.entries()) {
      if (this.deleted.has(p.metadata!.uid!)) continue; // reported by the caller for the other Pod
      const after = await stats(p.status!.podIP!, 2000);
      if (before[i] && after && after.restores !== before[i].restores)
        violations.push(`state restored into ${p.metadata!.name} after the ${kind} was deleted`);
    }
    for (const p of pods)
      if (this.deleted.has(p.metadata!.uid!)) violations.push(`Pod ${p.metadata!.name} was deleted`);
    return readyMs;
  }

  /** Creates the namespace, the app and its policy, and waits for both Pods to be checkpointed. */
  async setUp(): Promise<void> {
    const { deployment, policy } = chaosManifests(this.o.namespace);
    await this.core.deleteNamespace({ name: this.o.namespace }).catch(() => undefined);
    for (const deadline = Date.now() + 120_000; ; await sleep(500)) {
      const gone = await this.core.readNamespace({ name: this.o.namespace }).then(
        () => false,
        () => true,
      );
      if (gone) break;
      if (Date.now() > deadline) throw new Error(`namespace ${this.o.namespace} not deleted within 120 s`);
    }
    await this.core.createNamespace({ body: { metadata: { name: this.o.namespace } } });
    await this.apps.createNamespacedDeployment({ namespace: this.o.namespace, body: deployment });
    await this.kc.makeApiClient(CustomObjectsApi).createNamespacedCustomObject({
      group: 'pullstate.hitachienergy.com',
      version: 'v1alpha1',
      namespace: this.o.namespace,
      plural: 'pullstatepolicies',
      body: policy,
    });
  }
}
