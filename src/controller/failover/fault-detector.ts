import { CoreV1Api, type V1Node, type V1Pod } from '@kubernetes/client-node';
import type { PodFault } from '../../api/index.js';
import { statusCode } from '../../kube/api-error.js';
import { errorMessage, type Logger } from '../../runtime/logger.js';
import { probe as httpProbe, type ProbeOutcome } from '../../runtime/http-probe.js';
import type { ProtectedPod } from '../checkpoints/checkpointer.js';
import { podRef, policyRef } from '../checkpoints/checkpointer.js';
import { trackWork } from '../kube/in-flight.js';
import { FenceLedger } from './fence-ledger.js';
import { appRestartCount, appStarted } from '../kube/app-container.js';
import { isPodReady, type ClusterView, type HelperEndpoint } from '../kube/cluster-view.js';
import type { EventRecorder } from '../kube/events.js';
import { NotLeadingError } from '../kube/helper-client.js';
import type { Informer } from '../kube/informer.js';
import { WorkQueue, type ReconcileResult } from '../kube/workqueue.js';
import { setFence } from './node-fence.js';
import { probeTarget } from './probe-target.js';
import { systemClock, type Clock } from '../kube/clock.js';

export { probeTarget };

/** Helpers are probed this often, each probe waiting at most HELPER_PROBE_TIMEOUT_MS. */
const HELPER_PROBE_MS = 500;
const HELPER_PROBE_TIMEOUT_MS = 400;
/** The leader's probes of a node's helper met with silence that counts, in a row, before the node is lost. */
const HELPER_FAILURES = 3;
/** Helpers of other nodes asked for a second opinion on a silent helper (SWIM's k); all if fewer. */
const INDIRECT_PROBES = 2;
/** The asked helper waits this long for the suspect's answer; the call to it allows for its own round trip. */
const INDIRECT_PROBE_TIMEOUT_MS = 400;
const INDIRECT_CALL_TIMEOUT_MS = 1000;
/** The queue key of the helper probe round; every other key is `pod/<uid>`, a Pod probed from here. */
const HELPERS_KEY = 'helpers';
const podKey = (uid: string) => `pod/${uid}`;
/** Pods of suspect nodes probed at once (each waits at most 80 % of its period). */
const PROBE_CONCURRENCY = 256;

/** Restarts of all of a helper Pod's containers (its one container, as the DaemonSet is written). */
function helperRestarts(pod: V1Pod): number {
  return (pod.status?.containerStatuses ?? []).reduce((n, c) => n + (c.restartCount ?? 0), 0);
}

/** Silence means nothing else: a refused or reset connection, an HTTP status, a TLS alert all come from a live node. */
const silent = (outcome: string) => outcome === 'unreachable';

/** What the detector does to the cluster when it acts on a fault. */
export interface FaultActions {
  /** Deletes the Pod with grace period 0 (only the one with this UID). */
  deletePod(namespace: string, name: string, uid: string): Promise<void>;
  /** Adds or removes the operator's NoSchedule taint on the node. */
  setFence(node: string, on: boolean): Promise<void>;
}

/** Where the fault actions get their API calls: a KubeConfig, or scripted calls in a test. */
export interface FaultApiClients {
  makeApiClient(api: typeof CoreV1Api): Pick<CoreV1Api, 'deleteNamespacedPod' | 'readNode' | 'patchNode'>;
}

/** The fault actions through the API server. */
export function apiFaultActions(kc: FaultApiClients, mayAct: () => boolean = () => true): FaultActions {
  const core = kc.makeApiClient(CoreV1Api);
  return {
    deletePod: async (namespace, name, uid) => {
      // Asked at the last moment: a leader whose term ran out while it judged deletes nothing.
      if (!mayAct()) throw new NotLeadingError('Pod delete');
      await core.deleteNamespacedPod({
        name,
        namespace,
        gracePeriodSeconds: 0,
        body: { gracePeriodSeconds: 0, preconditions: { uid } },
      });
    },
    setFence: async (node, on) => {
      if (!mayAct()) throw new NotLeadingError(on ? 'fence' : 'unfence');
      await setFence(core, node, on);
    },
  };
}

export type Probe = (host: string, port: number, path: string, timeoutMs: number) => Promise<ProbeOutcome>;

/**
 * Asks the helper `via` (on another node) to probe the health port of `target`, the suspect node's helper;
 * resolves to the outcome it saw, rejects if `via` could not be asked (then it reported nothing).
 */
export type IndirectProbe = (
  via: HelperEndpoint,
  target: { node: string; ip: string; timeoutMs: number },
  callTimeoutMs: number,
) => Promise<string>;

export interface FaultDetectorDeps {
  actions: FaultActions;
  view: Pick<ClusterView, 'helpers' | 'helperPod' | 'helperProbed' | 'nodeReady' | 'nodeReadyIgnoringFence'>;
  nodes: Pick<Informer<V1Node>, 'get'>;
  /** Which nodes are fenced, shared with the cluster view (made from `nodes` if not given). */
  fences?: FenceLedger;
  events: Pick<EventRecorder, 'record'>;
  log: Logger;
  /** True while the Pod's state is being restored. */
  restoring: (podUID: string) => boolean;
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
  /** A probe of a suspect helper by the helper of another node; tests pass a scripted one. */
  indirectProbe: IndirectProbe;
  /**
   * The node this leader runs on: its helper shares the leader's network, so it is no second opinion (a
   * leader cut off from the other nodes would hear the same silence from it).
   */
  leaderNode?: () => string | undefined;
  /** The fixed probe rate's clock, and the probe queue's (tests pass a FakeClock). */
  clock?: Clock;
}

/** One suspicion of a node: from its helper's first counted silence until anything on the node answers. */
interface Suspicion {
  /** Indirect probe rounds running. */
  inFlight: number;
  /** Indirect probes that reported silence (one that reported an answer ended the suspicion). */
  silentReports: number;
  /** Whether any helper of another node was usable to ask. */
  peersAsked: boolean;
  /** Logged once: the decision waits for the API because nobody else could confirm. */
  waitingForApi?: boolean;
}

interface NodeWatch {
  /** The leader's probes of the node's helper met with silence that counts, in a row. */
  silent: number;
  /** The helper Pod that last answered the leader, and its container restarts then. */
  answeredBy?: { uid: string; restarts: number };
  suspicion?: Suspicion;
  /** Why the helper's last silence did not count (logged when it changes). */
  excused?: string;
}

/**
 * Fast failover (`http-sf`), split like Kubernetes splits it: each node's helper probes the Pods of its node
 * every `failover.periodMilliseconds` and reports a Pod that failed `failureThreshold` probes in a row; the
 * leader deletes it at once (grace period 0) so its workload controller makes the replacement now.
 *
 * The leader itself probes only the helpers' health ports (one per node, every HELPER_PROBE_MS) and judges
 * nodes. A false fence kills healthy apps and may run two copies of a StatefulSet identity, so a node is
 * declared lost only on evidence that it is gone, never on an answer from it:
 * - Any answer proves the node up and ends the suspicion: an HTTP status of any kind, a refused or reset
 *   connection, a TLS error, from its helper or any of its Pods, seen by the leader or by another helper. Only
 *   silence (no connection within the timeout, or "host unreachable") counts.
 * - The silence of a helper counts only while the API shows it should answer: not terminating, not replaced
 *   or restarted since it last answered the leader (a DaemonSet rollout closes the health port for seconds),
 *   and Ready, unless the API shows the node NotReady/Unknown (then the node explains it). A node without a
 *   helper Pod is never judged: nothing there could answer.
 * - SWIM's indirect probes (as in hashicorp/memberlist): at a helper's first counted silence, and at each
 *   later one once the previous round is done, the leader asks up to INDIRECT_PROBES helpers to probe it
 *   (`POST /v1/probe`), in parallel with its own next probes. They run on other nodes than the suspect's and
 *   the leader's own (whose helper shares the leader's uplink). The node is lost only after HELPER_FAILURES
 *   counted silences in a row, with every indirect probe that reported having met silence too (and at least
 *   one that did: with none in yet, the rounds still running are waited for). A standby gathers all this as
 *   well, reading only, so a new leader judges at once. If no other helper could be asked or none reported
 *   (a small cluster, or the leader cut off from the others), the API's node NotReady/Unknown must confirm
 *   it as well: a leader alone leans to not fencing.
 * - Meanwhile the leader probes the suspect node's Pods too, but only for an answer: a NetworkPolicy that
 *   admits only the helpers to a state port makes the leader's probe meet silence on a healthy node.
 * A lost node is fenced with a NoSchedule taint first (so the replacement does not land there), then all its
 * protected Pods are deleted. The taint is removed once the node and its helper are healthy again.
 */
export class FaultDetector {
  /** The http-sf Pods, by UID. */
  private pods = new Map<string, ProtectedPod>();
  private watches = new Map<string, NodeWatch>();
  private failing = new Set<string>();
  /** This replica leads: silences are judged and acted on (until then they are only gathered). */
  private acting = false;
  private readonly fences: FenceLedger;
  private unfencing = new Set<string>();
  private deleted = new Set<string>();
  /** Spreads indirect probes over the other helpers. */
  private rotation = 0;
  /** The helper probe round and the Pods probed from here, each key again after its period. */
  private readonly queue: WorkQueue;
  private readonly probe: Probe;
  private readonly clock: Clock;

  constructor(private readonly d: FaultDetectorDeps) {
    this.fences = d.fences ?? new FenceLedger(d.nodes);
    this.probe = d.probe ?? httpProbe;
    this.clock = d.clock ?? systemClock;
    this.queue = new WorkQueue(
      (key) => (key === HELPERS_KEY ? this.probeHelpers() : this.probePod(key.slice(4))),
      {
        concurrency: PROBE_CONCURRENCY,
        signal: d.signal,
        clock: this.clock,
        onError: (key, err, retryInMs) =>
          d.log.error('fault probe crashed, will retry', { key, error: errorMessage(err), retryInMs }),
      },
    );
  }

  /** Fenced as the node cache shows it, or by a write of this leader the cache has not shown yet. */
  isFenced(node: string): boolean {
    return this.fences.isFenced(node);
  }

  /**
   * Starts the helper probes (they run until the signal). Until `lead`, they only gather evidence: a standby
   * that watched the helpers takes over knowing which were silent, to whom, and which answered.
   */
  start(): void {
    this.queue.addAfter(HELPERS_KEY, HELPER_PROBE_MS);
  }

  /**
   * From now on silences are acted on. A standby gathered the evidence a leader decides on (its own probes
   * of the helpers and the other helpers' opinions; it probes no app Pod, which a NetworkPolicy may block
   * anyway), so what it gathered is judged at once, as soon as no round of opinions is still out: the node
   * the last leader ran on may be the lost one, and its Pods have waited since.
   */
  lead(): void {
    if (this.acting) return;
    this.acting = true;
    const helpers = this.d.view.helpers();
    for (const [node, w] of this.watches) {
      const ep = helpers.get(node);
      if (w.silent === 0 || !ep) continue;
      const s = (w.suspicion ??= { inFlight: 0, silentReports: 0, peersAsked: false });
      this.d.log.info('took over with a silent helper: judging what was gathered while standing by', {
        node,
        silent: w.silent,
        silentToPeers: s.silentReports,
      });
      this.judge(node);
      if (s.inFlight === 0 && !this.failing.has(node))
        void this.askPeers(node, ep, s).catch(this.crashed('indirect probes', { node }));
    }
  }

  /** Whether the node's helper is silent to this replica's probes now (counted silences). */
  isSuspect(node: string): boolean {
    return this.suspect(node);
  }

  /** Makes `entries` (the http-sf Pods of all policies) the watched set. */
  sync(entries: readonly ProtectedPod[]): void {
    const wanted = new Map(
      entries.filter((e) => e.spec.mode === 'http-sf').map((e) => [e.pod.metadata!.uid!, e]),
    );
    for (const uid of this.pods.keys()) {
      if (!wanted.has(uid)) {
        this.queue.forget(podKey(uid));
        this.pods.delete(uid);
      }
    }
    // A deleted Pod leaves the wanted set (it is terminating or gone): its uid need not be kept.
    for (const uid of this.deleted) if (!wanted.has(uid)) this.deleted.delete(uid);
    const suspects = new Set<string>();
    for (const [uid, entry] of wanted) {
      const fresh = !this.pods.has(uid);
      this.pods.set(uid, entry);
      const node = entry.pod.spec?.nodeName ?? '';
      if (fresh && this.suspect(node)) {
        this.queue.addAfter(podKey(uid), entry.spec.failover.periodMilliseconds);
        suspects.add(node);
      }
    }
    // A new leader learns the Pods at its first reconcile, after it judged the silences it gathered while
    // standing by: a node already judged lost has its newly known Pods deleted now, not at the next probe.
    for (const node of suspects) this.judge(node);
  }

  /** A helper reports a Pod of its node that failed its probes. */
  podFaultReported(node: string, fault: Pick<PodFault, 'podUID' | 'restartCount' | 'message'>): void {
    if (!this.acting) return;
    const entry = this.pods.get(fault.podUID);
    if (!entry || entry.pod.spec?.nodeName !== node) return;
    // The kubelet restarted it since (or is starting it): the new process gets its own chance.
    if (appRestartCount(entry.pod, entry.spec) !== fault.restartCount || !appStarted(entry.pod, entry.spec))
      return;
    if (this.d.restoring(fault.podUID)) return;
    void trackWork(
      this.d.signal,
      this.deletePod(entry, `${fault.message}, seen by the helper of node ${node}`),
    ).catch(this.crashed('deleting a failed Pod', { node, pod: entry.pod.metadata?.name }));
  }

  /** A node whose helper's silence counts: its Pods are probed from here meanwhile, for an answer. */
  private suspect(node: string): boolean {
    return (this.watches.get(node)?.silent ?? 0) >= 1;
  }

  /**
   * One probe of a Pod of a suspect node, at a fixed rate (one that times out does not push the next one
   * back). Only an answer means something: silence may be a NetworkPolicy that admits only the helpers.
   */
  private async probePod(uid: string): Promise<ReconcileResult> {
    const entry = this.pods.get(uid);
    const node = entry?.pod.spec?.nodeName ?? '';
    if (!entry || !this.suspect(node)) return;
    const started = this.clock.monotonic();
    const target = probeTarget(entry.pod, entry.spec);
    const period = entry.spec.failover.periodMilliseconds;
    const outcome = await this.probe(
      entry.pod.status?.podIP ?? '',
      target.port,
      target.path,
      Math.max(100, Math.round(period * 0.8)),
    );
    // Never sent (a liveness path or port no request can carry): no evidence either way; a tenant's spec
    // must neither prove a lost node up nor count against a live one.
    if (outcome !== 'misconfigured' && !silent(outcome))
      this.answered(node, `Pod ${entry.pod.metadata?.name} (${outcome})`);
    if (this.pods.get(uid) !== entry || !this.suspect(node)) return;
    return { requeueAfterMs: Math.max(0, period - (this.clock.monotonic() - started)) };
  }

  /** One round of helper probes, every HELPER_PROBE_MS from its start. */
  private async probeHelpers(): Promise<ReconcileResult> {
    const started = this.clock.monotonic();
    const helpers = this.d.view.helpers();
    // A node without a helper Pod has nothing that could answer: its suspicion, if any, ends.
    for (const node of this.watches.keys()) if (!helpers.has(node)) this.watches.delete(node);
    await Promise.all(
      [...helpers].map(async ([node, ep]) => {
        const u = new URL(ep.healthUrl);
        // /readyz: any answer says the node is there; a ready one says the helper can work, which the API
        // may show only seconds later.
        const outcome = await this.probe(u.hostname, Number(u.port), '/readyz', HELPER_PROBE_TIMEOUT_MS);
        if (this.d.view.helperProbed(node, ep.pod, outcome === 'ok')) this.d.onHelperReadiness?.(node);
        if (!silent(outcome)) {
          this.answered(node, `its helper (${outcome})`, ep);
          // Not awaited: an API call that hangs must not stop the probe rounds (each is one queue item).
          if (this.acting && (outcome === 'ok' || outcome === 'error') && this.isFenced(node))
            if (this.d.view.nodeReadyIgnoringFence(node)) void this.unfence(node);
        } else this.helperSilent(node, ep);
      }),
    );
    return { requeueAfterMs: Math.max(0, HELPER_PROBE_MS - (this.clock.monotonic() - started)) };
  }

  private watch(node: string): NodeWatch {
    let w = this.watches.get(node);
    if (!w) this.watches.set(node, (w = { silent: 0 }));
    return w;
  }

  /** Something on the node answered: it is up, whatever else was silent. */
  private answered(node: string, by: string, ep?: HelperEndpoint): void {
    const w = this.watch(node);
    if (w.silent > 0 || w.suspicion)
      this.d.log.info('node answers: not lost', { node, by, silent: w.silent });
    w.silent = 0;
    w.suspicion = undefined;
    w.excused = undefined;
    const pod = ep && this.d.view.helperPod(ep.pod);
    if (pod?.metadata?.uid) w.answeredBy = { uid: pod.metadata.uid, restarts: helperRestarts(pod) };
  }

  /**
   * Why the silence of a node's helper says nothing about the node, if it does not: the API shows the helper
   * going, new, restarted or not Ready while its node is Ready. Once the API shows the node NotReady too,
   * none of these explains the silence any more: a helper that restarted and then lost its node must not
   * shield the node for good.
   */
  private silenceExcuse(node: string, ep: HelperEndpoint, w: NodeWatch): string | undefined {
    const pod = this.d.view.helperPod(ep.pod);
    if (!pod?.metadata?.uid) return 'its helper Pod is not in the API';
    if (!this.d.view.nodeReadyIgnoringFence(node)) return undefined;
    if (pod.metadata.deletionTimestamp) return 'its helper Pod is terminating';
    if (w.answeredBy && w.answeredBy.uid !== pod.metadata.uid)
      return 'its helper Pod replaced the one that last answered (a rollout)';
    if (w.answeredBy && w.answeredBy.restarts !== helperRestarts(pod))
      return 'its helper restarted since it last answered';
    if (!isPodReady(pod)) return 'its helper Pod is not Ready (and the node is)';
    return undefined;
  }

  private helperSilent(node: string, ep: HelperEndpoint): void {
    const w = this.watch(node);
    const excuse = this.silenceExcuse(node, ep, w);
    if (excuse) {
      if (w.excused !== excuse) this.d.log.info('helper silent, which says nothing', { node, why: excuse });
      w.excused = excuse;
      w.silent = 0;
      w.suspicion = undefined;
      return;
    }
    w.excused = undefined;
    w.silent++;
    // A standby gathers evidence as a leader does (it only reads); what it means is for a leader to decide.
    if (w.silent === 1) {
      this.d.log.info('helper missed a health probe: asking other helpers, probing its Pods', {
        node,
        url: ep.healthUrl,
        ...(this.acting ? {} : { standingBy: true }),
      });
      this.probeNodePods(node);
    }
    const s = (w.suspicion ??= { inFlight: 0, silentReports: 0, peersAsked: false });
    this.judge(node);
    // A fresh round each time the last one is done, started after judging: the decision does not wait for it.
    // A node fenced and emptied needs no more opinions until it answers again.
    const settled = this.isFenced(node) && this.podsOn(node).length === 0;
    if (s.inFlight === 0 && !this.failing.has(node) && !settled)
      void this.askPeers(node, ep, s).catch(this.crashed('indirect probes', { node }));
  }

  /** Helpers that can give a second opinion now: answering, on other Ready unfenced nodes than both. */
  private peers(node: string): HelperEndpoint[] {
    const own = this.d.leaderNode?.();
    const all = [...this.d.view.helpers()]
      .filter(
        ([n, ep]) =>
          n !== node &&
          n !== own &&
          ep.ready &&
          this.d.view.nodeReady(n) &&
          !this.isFenced(n) &&
          !this.suspect(n),
      )
      .map(([, ep]) => ep)
      .sort((a, b) => a.node.localeCompare(b.node));
    if (all.length <= INDIRECT_PROBES) return all;
    const from = this.rotation++ % all.length;
    return [...all.slice(from), ...all.slice(0, from)].slice(0, INDIRECT_PROBES);
  }

  /** One round of indirect probes of a suspect helper; the node is judged again when all reported. */
  private async askPeers(node: string, ep: HelperEndpoint, s: Suspicion): Promise<void> {
    const peers = this.peers(node);
    if (peers.length === 0) return;
    s.peersAsked = true;
    s.inFlight++;
    const target = { node, ip: new URL(ep.healthUrl).hostname, timeoutMs: INDIRECT_PROBE_TIMEOUT_MS };
    await Promise.all(
      peers.map(async (via) => {
        try {
          const outcome = await this.d.indirectProbe(via, target, INDIRECT_CALL_TIMEOUT_MS);
          if (this.watches.get(node)?.suspicion !== s || outcome === 'misconfigured') return;
          if (!silent(outcome))
            this.answered(node, `its helper, probed by the helper of ${via.node} (${outcome})`);
          else s.silentReports++;
        } catch (err) {
          this.d.log.debug('could not ask a helper to probe another', {
            node,
            via: via.node,
            error: errorMessage(err),
          });
        }
      }),
    );
    s.inFlight--;
    this.judge(node);
  }

  /** Declares the node lost if every vantage point met silence (see the class comment). */
  private judge(node: string): void {
    const w = this.watches.get(node);
    const s = w?.suspicion;
    if (!this.acting || !w || !s || w.silent < HELPER_FAILURES || this.failing.has(node)) return;
    // Opinions still coming: wait for them, even with silences from an earlier round in (any answer among
    // them ends the suspicion). A round ends within INDIRECT_CALL_TIMEOUT_MS and judges again then.
    if (s.inFlight > 0) return;
    // Fenced already (by this leader, or one before it that may have died before it deleted every Pod).
    if (this.isFenced(node) && this.podsOn(node).length === 0) return;
    let why = `its helper was silent to ${w.silent} probes, and to ${s.silentReports} from other nodes' helpers`;
    if (s.silentReports === 0) {
      // Nobody else could look: the leader may be the one cut off. Only the API can confirm it then.
      if (this.d.view.nodeReadyIgnoringFence(node)) {
        if (!s.waitingForApi)
          this.d.log.warn(
            'helper silent, but no other helper could confirm it: waiting for the node NotReady',
            {
              node,
              peersAsked: s.peersAsked,
            },
          );
        s.waitingForApi = true;
        return;
      }
      why = `its helper was silent to ${w.silent} probes and the API shows it NotReady (no other helper could probe it)`;
    }
    void trackWork(this.d.signal, this.nodeFailed(node, why, s)).catch(
      this.crashed('fencing and evacuating a lost node', { node }),
    );
  }

  /** A rejection handler for work not awaited: its own errors are handled inside, so this is a bug. */
  private crashed(what: string, fields: Record<string, unknown>): (err: unknown) => void {
    return (err) => this.d.log.error(`${what} crashed`, { ...fields, error: errorMessage(err) });
  }

  /** Starts probing a node's Pods from the leader, for an answer while its helper is silent. */
  private probeNodePods(node: string): void {
    for (const [uid, e] of this.pods) if (e.pod.spec?.nodeName === node) this.queue.add(podKey(uid));
  }

  private async nodeFailed(node: string, why: string, judged: Suspicion): Promise<void> {
    // Several paths reach this at once: one fence and one round of deletes.
    if (this.failing.has(node)) return;
    this.failing.add(node);
    try {
      await this.fenceAndEvacuate(node, why, judged);
    } finally {
      this.failing.delete(node);
    }
  }

  /** The node's protected Pods not deleted yet. */
  private podsOn(node: string): ProtectedPod[] {
    return [...this.pods]
      .filter(([uid, e]) => e.pod.spec?.nodeName === node && !this.deleted.has(uid))
      .map(([, e]) => e);
  }

  private async fenceAndEvacuate(node: string, why: string, judged: Suspicion): Promise<void> {
    this.d.log.warn('node lost: fencing it and deleting its protected Pods', { node, why });
    try {
      if (!this.isFenced(node)) await this.setFence(node, true);
    } catch (err) {
      this.d.log.error('could not fence the node; deleting its Pods anyway', {
        node,
        error: errorMessage(err),
      });
    }
    // The fence may have taken a while: anything on the node that answered meanwhile ended the suspicion,
    // and then its Pods are alive. The fence comes off with the next answer of its helper.
    if (this.watches.get(node)?.suspicion !== judged) {
      this.d.log.warn('node answered while it was being fenced: its Pods are not deleted', { node });
      return;
    }
    // The term ended during the fence (a stopping leader lets it finish): its probes stopped, so an answer
    // from the node could no longer end the suspicion. The next leader judges the node again.
    if (this.d.signal?.aborted) {
      this.d.log.warn(
        'leadership term ended while the node was fenced: its Pods are left to the next leader',
        {
          node,
        },
      );
      return;
    }
    await Promise.all(this.podsOn(node).map((e) => this.deletePod(e, `node ${node} is lost: ${why}`)));
  }
  private async setFence(node: string, on: boolean): Promise<void> {
    await this.d.actions.setFence(node, on);
    this.fences.wrote(node, on);
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
    this.pods.delete(uid);
  }
}
