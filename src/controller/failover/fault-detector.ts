import { CoreV1Api, type KubeConfig, type V1Node, type V1Pod } from '@kubernetes/client-node';
import { FENCE_TAINT, type PodFault } from '../../api/index.js';
import { statusCode } from '../../kube/api-error.js';
import { errorMessage, type Logger } from '../../runtime/logger.js';
import { probe as httpProbe, type ProbeOutcome } from '../../runtime/http-probe.js';
import type { ProtectedPod } from '../checkpoints/checkpointer.js';
import { podRef, policyRef } from '../checkpoints/checkpointer.js';
import { restartCount, type ClusterView } from '../kube/cluster-view.js';
import type { EventRecorder } from '../kube/events.js';
import type { Informer } from '../kube/informer.js';
import { WorkQueue, type ReconcileResult } from '../kube/workqueue.js';
import { setFence } from './node-fence.js';
import { probeTarget } from './probe-target.js';

export { probeTarget };

/** Helpers are probed this often; a node whose helper and Pods all fail is declared failed. */
const HELPER_PROBE_MS = 500;
const HELPER_FAILURES = 3;
/** The queue key of the helper probe round; every other key is `pod/<uid>`, a Pod probed from here. */
const HELPERS_KEY = 'helpers';
const podKey = (uid: string) => `pod/${uid}`;
/** Pods of suspect nodes probed at once (each waits at most 80 % of its period). */
const PROBE_CONCURRENCY = 256;

/** Whether the kubelet reports every container of the Pod started (its startupProbe, if any, passed). */
export function containersStarted(pod: V1Pod): boolean {
  const statuses = pod.status?.containerStatuses ?? [];
  return statuses.length > 0 && statuses.every((c) => c.started === true && !!c.state?.running);
}

export interface ProbeState {
  failures: number;
  /** The app has answered a probe since its (re)start: only then can a failed probe mean a fault. */
  answered: boolean;
}

/**
 * One probe's effect on a Pod's state (pure). A slow-starting app (a JVM, heavy imports, data loaded at
 * start) is not a failed one: failures count only once the kubelet reports the containers started and the
 * app has answered since then; an app that never comes up is the kubelet's business (its own probes and
 * back-off). While a restore runs the app may be busy: not a fault either.
 */
export function probeVerdict(
  s: ProbeState,
  o: {
    ok: boolean;
    started: boolean;
    restoring: boolean;
    /** A checkpoint was pulled from this process (same restart count): known even after a takeover. */
    pulledSinceStart: boolean;
  },
): ProbeState {
  if (!o.started) return { failures: 0, answered: false };
  if (o.ok) return { failures: 0, answered: true };
  const answered = s.answered || o.pulledSinceStart;
  if (!answered || o.restoring) return { failures: 0, answered };
  return { failures: s.failures + 1, answered: true };
}

interface PodProbe extends ProbeState {
  entry: ProtectedPod;
}

/** What the detector does to the cluster when it acts on a fault. */
export interface FaultActions {
  /** Deletes the Pod with grace period 0 (only the one with this UID). */
  deletePod(namespace: string, name: string, uid: string): Promise<void>;
  /** Adds or removes the operator's NoSchedule taint on the node. */
  setFence(node: string, on: boolean): Promise<void>;
}

/** The fault actions through the API server. */
export function apiFaultActions(kc: KubeConfig): FaultActions {
  const core = kc.makeApiClient(CoreV1Api);
  return {
    deletePod: async (namespace, name, uid) => {
      await core.deleteNamespacedPod({
        name,
        namespace,
        gracePeriodSeconds: 0,
        body: { gracePeriodSeconds: 0, preconditions: { uid } },
      });
    },
    setFence: (node, on) => setFence(core, node, on),
  };
}

export type Probe = (host: string, port: number, path: string, timeoutMs: number) => Promise<ProbeOutcome>;

export interface FaultDetectorDeps {
  actions: FaultActions;
  view: ClusterView;
  nodes: Informer<V1Node>;
  events: EventRecorder;
  log: Logger;
  /** True while the Pod's state is being restored. */
  restoring: (podUID: string) => boolean;
  /** True if a checkpoint was pulled from the Pod's current process (its app has answered). */
  pulledSinceStart: (pod: V1Pod) => boolean;
  /** A fault was acted on for this policy (for the detection-to-ready metric). */
  onFault: (policyKey: string) => void;
  /** The Pod is given up for lost (about to be deleted): what its process does from now on is not its state. */
  givenUp?: (podUID: string) => void;
  /** A helper's readiness to the leader's probe changed (it may differ from the API's for a while). */
  onHelperReadiness?: (node: string) => void;
  /** Ends every probe (leadership lost, shutdown). */
  signal?: AbortSignal;
  /** One HTTP probe; tests pass a scripted one. */
  probe?: Probe;
  /** Milliseconds, for the fixed probe rate (tests pass a fake clock). */
  now?: () => number;
}

/**
 * Fast failover (`http-sf`), split like Kubernetes splits it: each node's helper probes the Pods of its node
 * every `failover.periodMilliseconds` and reports a Pod that failed `failureThreshold` probes in a row; the
 * leader deletes it at once (grace period 0) so its workload controller makes the replacement now. The
 * leader itself probes only the helpers (one per node). A node whose helper stops answering is suspect: only
 * then does the leader probe that node's Pods itself, and if they fail too the node is gone: it is fenced
 * with a NoSchedule taint first (so the replacement does not land there), then all its protected Pods are
 * deleted. The taint is removed once the node and its helper are healthy again.
 */
export class FaultDetector {
  private probes = new Map<string, PodProbe>();
  private helperFailures = new Map<string, number>();
  private suspects = new Set<string>();
  private failing = new Set<string>();
  private fenced = new Set<string>();
  private unfencing = new Set<string>();
  private deleted = new Set<string>();
  private restarts = new Map<string, number>();
  /** The helper probe round and the Pods probed from here, each key again after its period. */
  private readonly queue: WorkQueue;
  private readonly probe: Probe;
  private readonly now: () => number;

  constructor(private readonly d: FaultDetectorDeps) {
    this.probe = d.probe ?? httpProbe;
    this.now = d.now ?? Date.now;
    this.queue = new WorkQueue(
      (key) => (key === HELPERS_KEY ? this.probeHelpers() : this.probePod(key.slice(4))),
      {
        concurrency: PROBE_CONCURRENCY,
        signal: d.signal,
        onError: (key, err, retryInMs) =>
          d.log.error('fault probe crashed, will retry', { key, error: errorMessage(err), retryInMs }),
      },
    );
  }

  fencedNodes(): ReadonlySet<string> {
    return this.fenced;
  }

  /** Learns the fences a previous leader left and starts the helper probes (they run until the signal). */
  start(): void {
    for (const n of this.d.nodes.list())
      if ((n.spec?.taints ?? []).some((t) => t.key === FENCE_TAINT)) this.fenced.add(n.metadata!.name!);
    this.queue.addAfter(HELPERS_KEY, HELPER_PROBE_MS);
  }

  /** Makes `entries` (the http-sf Pods of all policies) the watched set. */
  sync(entries: readonly ProtectedPod[]): void {
    const wanted = new Map(
      entries.filter((e) => e.spec.mode === 'http-sf').map((e) => [e.pod.metadata!.uid!, e]),
    );
    for (const uid of this.probes.keys()) {
      if (!wanted.has(uid)) {
        this.queue.forget(podKey(uid));
        this.probes.delete(uid);
        this.restarts.delete(uid);
      }
    }
    // A deleted Pod leaves the wanted set (it is terminating or gone): its uid need not be kept.
    for (const uid of this.deleted) if (!wanted.has(uid)) this.deleted.delete(uid);
    const helperNodes = this.d.view.helpers();
    for (const node of this.helperFailures.keys())
      if (!helperNodes.has(node)) this.helperFailures.delete(node);
    for (const [uid, entry] of wanted) {
      const p = this.probes.get(uid);
      // A container restarting in place is the kubelet's job: the new process has to answer first.
      const restarts = restartCount(entry.pod);
      if (p && this.restarts.get(uid) !== restarts) {
        p.failures = 0;
        p.answered = false;
      }
      this.restarts.set(uid, restarts);
      if (p) p.entry = entry;
      else {
        const fresh: PodProbe = { entry, failures: 0, answered: false };
        this.probes.set(uid, fresh);
        if (this.suspect(entry.pod.spec?.nodeName ?? ''))
          this.queue.addAfter(podKey(uid), entry.spec.failover.periodMilliseconds);
      }
    }
  }

  /** A helper reports a Pod of its node that failed its probes. */
  podFaultReported(node: string, fault: PodFault): void {
    const p = this.probes.get(fault.podUID);
    if (!p || p.entry.pod.spec?.nodeName !== node) return;
    // The kubelet restarted it since (or is starting it): the new process gets its own chance.
    if (restartCount(p.entry.pod) !== fault.restartCount || !containersStarted(p.entry.pod)) return;
    if (this.d.restoring(fault.podUID)) return;
    void this.deletePod(p.entry, `${fault.message}, seen by the helper of node ${node}`);
  }

  /** A node whose helper is missing or has stopped answering: its Pods are probed from here meanwhile. */
  private suspect(node: string): boolean {
    return this.suspects.has(node);
  }

  /**
   * One probe of a Pod of a suspect node. Probes run at a fixed rate: a probe that times out does not push
   * the next one back by its timeout.
   */
  private async probePod(uid: string): Promise<ReconcileResult> {
    const p = this.probes.get(uid);
    if (!p || !this.suspect(p.entry.pod.spec?.nodeName ?? '')) return;
    const started = this.now();
    const { pod, spec } = p.entry;
    const target = probeTarget(pod, spec);
    const period = spec.failover.periodMilliseconds;
    const outcome = await this.probe(
      pod.status?.podIP ?? '',
      target.port,
      target.path,
      Math.max(100, Math.round(period * 0.8)),
    );
    const ok = outcome === 'ok';
    if (this.probes.get(uid) !== p) return;
    // Never sent (a liveness path or port no request can carry): no evidence about the Pod or its node.
    if (outcome === 'misconfigured') return { requeueAfterMs: Math.max(0, period - (this.now() - started)) };
    const seen = {
      ok,
      started: containersStarted(p.entry.pod),
      restoring: this.d.restoring(uid),
      pulledSinceStart: this.d.pulledSinceStart(p.entry.pod),
    };
    const next = probeVerdict(p, seen);
    if (!ok)
      this.d.log.debug('Pod of a suspect node did not answer', {
        pod: pod.metadata?.name,
        outcome,
        ...seen,
        failures: next.failures,
        helperFailures: this.helperFailures.get(pod.spec?.nodeName ?? ''),
      });
    p.failures = next.failures;
    p.answered = next.answered;
    const node = pod.spec?.nodeName ?? '';
    // The helper on the Pod's node missed HELPER_FAILURES probes and the Pod does not answer either: the
    // node is unreachable. One failed Pod probe confirms it; the threshold is for a Pod failing alone. A Pod
    // not known to have answered yet (restored onto the node, or placed there while its helper showed not
    // Ready, so never pulled) confirms it only by silence: a starting app refuses, a lost node says nothing.
    const confirms = p.failures >= 1 || outcome === 'unreachable';
    if (confirms && this.helperDown(node) && !this.fenced.has(node)) await this.nodeFailed(node);
    else if (p.failures >= spec.failover.failureThreshold) await this.podFailed(p);
    if (this.probes.get(uid) !== p || !this.suspect(node)) return;
    return { requeueAfterMs: Math.max(0, period - (this.now() - started)) };
  }

  /** One round of helper probes, every HELPER_PROBE_MS from its start. */
  private async probeHelpers(): Promise<ReconcileResult> {
    const started = this.now();
    const helpers = this.d.view.helpers();
    await Promise.all(
      [...helpers].map(async ([node, ep]) => {
        const u = new URL(ep.healthUrl);
        // /readyz: any answer says the node is there; a ready one says the helper can work, which the API
        // may show only seconds later.
        const outcome = await this.probe(u.hostname, Number(u.port), '/readyz', 400);
        const ok = outcome === 'ok' || outcome === 'error';
        if (this.d.view.helperProbed(node, ep.pod, outcome === 'ok')) this.d.onHelperReadiness?.(node);
        const before = this.helperFailures.get(node) ?? 0;
        this.helperFailures.set(node, ok ? 0 : before + 1);
        // Transitions only: a node's helper missing probes is the first sign of a node loss.
        if (!ok && before === 0) this.d.log.info('helper missed a health probe', { node, url: ep.healthUrl });
        if (ok && before > 0)
          this.d.log.info('helper answers its health probe again', { node, missed: before });
        // Not awaited: an API call that hangs must not stop the probe rounds (each is one queue item).
        if (ok && this.fenced.has(node) && this.d.view.nodeReadyIgnoringFence(node)) void this.unfence(node);
      }),
    );
    this.updateSuspects(helpers);
    return { requeueAfterMs: Math.max(0, HELPER_PROBE_MS - (this.now() - started)) };
  }

  private updateSuspects(helpers: Map<string, unknown>): void {
    const now = new Set<string>();
    for (const p of this.probes.values()) {
      const node = p.entry.pod.spec?.nodeName;
      // One missed helper probe is enough to start looking: a node loss is then confirmed as fast as before.
      if (node && (!helpers.has(node) || (this.helperFailures.get(node) ?? 0) >= 1)) now.add(node);
    }
    // Set first: a probe queued below may run at once and asks whether its node is still suspect.
    const before = this.suspects;
    this.suspects = now;
    for (const node of now) if (!before.has(node)) this.probeNodePods(node, true);
    for (const node of before) if (!now.has(node)) this.probeNodePods(node, false);
  }

  /** Starts (or stops) probing a node's Pods from the leader, while its helper cannot. */
  private probeNodePods(node: string, on: boolean): void {
    if (on) this.d.log.info('helper missing or not answering: probing its Pods from here', { node });
    for (const [uid, p] of this.probes) {
      if (p.entry.pod.spec?.nodeName !== node) continue;
      if (on) this.queue.add(podKey(uid));
      else {
        this.queue.forget(podKey(uid));
        p.failures = 0;
      }
    }
  }

  private helperDown(node: string): boolean {
    return (this.helperFailures.get(node) ?? 0) >= HELPER_FAILURES;
  }

  private async podFailed(p: PodProbe): Promise<void> {
    const node = p.entry.pod.spec?.nodeName ?? '';
    if (this.helperDown(node) && !this.fenced.has(node)) await this.nodeFailed(node);
    else await this.deletePod(p.entry, `${p.failures} probes in a row failed`);
  }

  private async nodeFailed(node: string): Promise<void> {
    // Several Pods of the node reach this at once: one fence and one round of deletes.
    if (this.failing.has(node)) return;
    this.failing.add(node);
    try {
      await this.fenceAndEvacuate(node);
    } finally {
      this.failing.delete(node);
    }
  }

  private async fenceAndEvacuate(node: string): Promise<void> {
    this.d.log.warn('node failed: its helper and protected Pods are unreachable; fencing it', { node });
    try {
      await this.setFence(node, true);
    } catch (err) {
      this.d.log.error('could not fence the node; deleting its Pods anyway', {
        node,
        error: errorMessage(err),
      });
    }
    const onNode = [...this.probes.values()].filter((x) => x.entry.pod.spec?.nodeName === node);
    await Promise.all(onNode.map((x) => this.deletePod(x.entry, `node ${node} is unreachable`)));
  }

  private async setFence(node: string, on: boolean): Promise<void> {
    await this.d.actions.setFence(node, on);
    if (on) this.fenced.add(node);
    else this.fenced.delete(node);
  }

  private async unfence(node: string): Promise<void> {
    if (this.unfencing.has(node)) return;
    this.unfencing.add(node);
    try {
      await this.setFence(node, false);
      this.d.log.info('node healthy again, fence removed', { node });
    } catch (err) {
      this.d.log.warn('could not remove the fence', { node, error: errorMessage(err) });
    } finally {
      this.unfencing.delete(node);
    }
  }

  private async deletePod(e: ProtectedPod, why: string): Promise<void> {
    const uid = e.pod.metadata!.uid!;
    if (this.deleted.has(uid)) return;
    this.deleted.add(uid);
    const name = e.pod.metadata!.name!;
    const namespace = e.pod.metadata!.namespace!;
    this.d.log.warn('Pod failed, deleting it so its replacement starts now', { pod: name, namespace, why });
    this.d.onFault(e.policyKey);
    this.d.givenUp?.(uid);
    const text = `Pod ${name} failed (${why}): deleted with grace period 0 so its replacement starts now`;
    this.d.events.record(policyRef({ ...e, namespace }), 'Warning', 'PodFailed', text);
    this.d.events.record(podRef(e.pod), 'Warning', 'PodFailed', text);
    try {
      await this.d.actions.deletePod(namespace, name, uid);
    } catch (err) {
      if (statusCode(err) !== 404 && statusCode(err) !== 409) {
        this.deleted.delete(uid);
        this.d.log.error('could not delete the failed Pod', { pod: name, error: errorMessage(err) });
      }
    }
    this.queue.forget(podKey(uid));
    this.probes.delete(uid);
  }
}
