import { setMaxListeners } from 'node:events';
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type V1Node,
  type V1Pod,
} from '@kubernetes/client-node';
import {
  ANNOTATION_PREFIX,
  GROUP,
  LABELS,
  PLURAL,
  VERSION,
  type AnnotatedKind,
  type IPullStatePolicy,
} from '../api/index.js';
import type { Logger } from '../runtime/logger.js';
import { CheckpointBook, policyKey } from './checkpoints/checkpoint-book.js';
import { Checkpointer } from './checkpoints/checkpointer.js';
import { AssignmentPublisher } from './checkpoints/assignment-publisher.js';
import { ReportCollector } from './checkpoints/report-collector.js';
import { ClusterView, isHelperPod } from './kube/cluster-view.js';
import { EventRecorder } from './kube/events.js';
import { HelperClient, type HelperTarget } from './kube/helper-client.js';
import { Informer } from './kube/informer.js';
import type { ControllerMetrics } from './metrics.js';
import { collectOrphans } from './checkpoints/orphan-collector.js';
import { PolicyReconciler } from './policies/policy-reconciler.js';
import { StatusWriter } from './policies/status-writer.js';
import { drainWork } from './kube/in-flight.js';
import { WorkQueue, type ReconcileResult } from './kube/workqueue.js';
import { FaultDetector, apiFaultActions } from './failover/fault-detector.js';
import { Restorer } from './restores/restorer.js';
import { GateKeeper } from './restores/gate-keeper.js';
import { apiConditionPatch, GateWriter } from './restores/readiness-gate.js';
import { WorkloadReconciler, workloadKey, type Workload } from './policies/workload-reconciler.js';
import { HelperCertificateSigner } from './certificates/helper-signer.js';
import { RestoreRequestReconciler } from './restores/restore-requests.js';
import type { CertificateAuthority } from '../tls/pki.js';
import type { MetricsSample } from './metrics.js';
import type { HelperCredentials } from '../kube/bearer-token.js';

export interface ManagerOptions {
  kc: KubeConfig;
  /** What the leader sends to each helper (a token for that helper's audience). */
  helperCredentials: HelperCredentials;
  log: Logger;
  metrics: ControllerMetrics;
  operatorNamespace: string;
  /** This replica's Pod name (in the operator namespace), to know the node it runs on. */
  identity?: string;
  workers: number;
  orphanRetentionMs: number;
  /** The operator's CA: helpers' certificates are verified against it, and the signer signs with it. */
  ca: CertificateAuthority;
  /** `system:serviceaccount:<namespace>:<name>` of the helpers, the only requester whose CSRs are signed. */
  helperUser: string;
  helperCertValidityMs: number;
  /**
   * Whether this replica may act now (it leads, within its renew deadline); asked right before every fence,
   * delete and restore. Always, without leader election.
   */
  mayAct?: () => boolean;
}

/**
 * The leader's periodic chores: `retarget` (copies whose node or helper went away get a new one),
 * `orphan-clock` (copies nobody protects start their retention clock), `orphans` (expired copies deleted),
 * `inventories` (helper inventories that could not be read, read again).
 */
type Chore = 'retarget' | 'orphan-clock' | 'orphans' | 'inventories';

/** How often inventories that could not be read are tried again. */
const INVENTORY_RETRY_MS = 2000;

const hasOwnAnnotations = (w: Workload) =>
  Object.keys(w.metadata?.annotations ?? {}).some((k) => k.startsWith(ANNOTATION_PREFIX));

/**
 * Everything the leader runs: caches, reconcilers and the checkpoint schedule. A standby keeps the caches and
 * the detector's helper probes warm (`warm`, observing only, as controller-runtime starts caches before the
 * election); everything that writes or calls helpers starts with `lead`, from the API and the helpers'
 * inventories alone, so a takeover loses nothing and costs no cold start.
 */
export class Manager {
  readonly book = new CheckpointBook();
  readonly pods: Informer<V1Pod>;
  readonly nodes: Informer<V1Node>;
  readonly policies: Informer<IPullStatePolicy>;
  readonly workloads: Record<AnnotatedKind, Informer<Workload>>;
  readonly view: ClusterView;
  readonly helpers: HelperClient;
  readonly events: EventRecorder;
  readonly checkpointer: Checkpointer;
  /** Tells each helper which Pods of its node to pull. */
  readonly publisher: AssignmentPublisher;
  /** Learns the outcome of every pull from the helpers. */
  readonly collector: ReportCollector;
  readonly status: StatusWriter;
  readonly policyReconciler: PolicyReconciler;
  readonly restorer: Restorer;
  readonly detector: FaultDetector;
  readonly gateKeeper: GateKeeper;
  private readonly gate: GateWriter;
  readonly signer: HelperCertificateSigner;
  readonly restoreRequests: RestoreRequestReconciler;
  private faultAt = new Map<string, number>();
  readonly workloadReconciler: WorkloadReconciler;
  readonly policyQueue: WorkQueue;
  readonly workloadQueue: WorkQueue;
  private readonly annotationProblems = new Map<string, string>();
  /** The leader's own periodic chores, as keys of one queue (see `Chore`). */
  private readonly housekeeping: WorkQueue;
  /** When this term started: copies nobody protects count their retention from then. */
  private orphanClockAt = 0;
  private knownHelpers = new Map<string, string>();
  /**
   * Nodes whose helper inventory could not be read (at the takeover, or when the helper became Ready): read
   * again by the 'inventories' chore, whatever the helper's readiness does meanwhile.
   */
  private unread = new Set<string>();
  /** One signal ends everything this leadership term started. */
  private readonly term = new AbortController();
  synced = false;

  constructor(private readonly o: ManagerOptions) {
    // Every queue, informer and loop of the term listens to its signal: more than node's default of 10.
    setMaxListeners(0, this.term.signal);
    const { kc, log } = o;
    const core = kc.makeApiClient(CoreV1Api);
    const apps = kc.makeApiClient(AppsV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    const informer = <T extends KubernetesObject>(
      name: string,
      path: string,
      list: () => Promise<KubernetesListObject<T>>,
    ) => new Informer<T>({ name, kc, path, log, list });
    this.pods = informer<V1Pod>('pods', '/api/v1/pods', () => core.listPodForAllNamespaces());
    this.nodes = informer<V1Node>('nodes', '/api/v1/nodes', () => core.listNode());
    this.policies = informer<IPullStatePolicy>(PLURAL, `/apis/${GROUP}/${VERSION}/${PLURAL}`, () =>
      custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL }),
    );
    this.workloads = {
      Deployment: informer<Workload>('deployments', '/apis/apps/v1/deployments', () =>
        apps.listDeploymentForAllNamespaces(),
      ),
      StatefulSet: informer<Workload>('statefulsets', '/apis/apps/v1/statefulsets', () =>
        apps.listStatefulSetForAllNamespaces(),
      ),
    };
    this.view = new ClusterView(this.nodes, this.pods, o.operatorNamespace, (node) =>
      this.detector.isFenced(node),
    );
    const mayAct = o.mayAct ?? (() => true);
    this.helpers = new HelperClient(o.helperCredentials, o.ca.certPem, mayAct);
    this.signer = new HelperCertificateSigner({
      kc,
      ca: o.ca,
      operatorNamespace: o.operatorNamespace,
      helperUser: o.helperUser,
      pod: (ns, name) => this.pods.get(name, ns),
      isHelperPod: (pod) => isHelperPod(pod, o.operatorNamespace),
      validityMs: o.helperCertValidityMs,
      signal: this.term.signal,
      log,
      // Read when a request is handled, after the constructor set it.
      events: { record: (...args) => this.events.record(...args) },
    });
    this.events = new EventRecorder(kc, log);
    this.restoreRequests = new RestoreRequestReconciler({
      kc,
      log,
      events: this.events,
      helpers: this.helpers,
      policyExists: (ns, name) => this.policies.get(name, ns) !== undefined,
      protectedPods: (ns, name) =>
        this.checkpointer
          .protectedPods()
          .filter((p) => p.policyKey === policyKey(ns, name) && p.pod.status?.podIP),
      record: (uid) => this.book.get(uid),
      refresh: (uid) => this.refreshRecord(uid),
      usableHelpers: () => this.view.usableHelpers(),
      signal: this.term.signal,
    });
    this.checkpointer = new Checkpointer({
      book: this.book,
      podNodes: () =>
        new Map(
          this.pods
            .list()
            .filter((p) => p.spec?.nodeName)
            .map((p) => [p.metadata!.uid!, p.spec!.nodeName!]),
        ),
      view: this.view,
      helpers: this.helpers,
      metrics: o.metrics,
      events: this.events,
      log,
      onChange: (key) => this.status.request(key),
      onAssignmentsChange: () => this.publisher.poke(),
      mayPull: (pod) => this.restorer.mayPull(pod.metadata!.uid!),
      onStored: (uid) => this.restorer.stateKept(uid),
      onRestart: (entry, instance) =>
        this.restorer.restartSeen(entry.policyKey, entry.pod.metadata!.uid!, instance),
      signal: this.term.signal,
    });
    this.publisher = new AssignmentPublisher({
      helpers: this.helpers,
      endpoints: () => this.view.helpers(),
      build: () => this.checkpointer.assignments(),
      holds: () => this.checkpointer.holds(),
      log,
      signal: this.term.signal,
    });
    this.collector = new ReportCollector({
      helpers: this.helpers,
      endpoints: () => this.view.helpers(),
      apply: (_node, reports) => this.checkpointer.applyReports(reports),
      faults: (node, faults) => {
        for (const f of faults) this.detector.podFaultReported(node, f);
      },
      helperRestarted: (node) => this.publisher.forget(node),
      log,
      signal: this.term.signal,
    });
    const currentPod = (namespace: string, name: string, uid: string) => {
      const pod = this.pods.get(name, namespace);
      return pod?.metadata?.uid === uid ? pod : undefined;
    };
    const gate = new GateWriter({ patch: apiConditionPatch(kc), currentPod, log, signal: this.term.signal });
    this.gate = gate;
    this.gateKeeper = new GateKeeper({
      gate,
      events: this.events,
      log,
      currentPod,
      selected: (pod) => this.policyReconciler.keysForPod(pod).length > 0,
      refusal: (pod) => this.policyReconciler.refusal(pod),
      signal: this.term.signal,
    });
    this.restorer = new Restorer({
      gate,
      book: this.book,
      view: this.view,
      helpers: this.helpers,
      events: this.events,
      metrics: o.metrics,
      log,
      onChange: (key) => {
        this.status.request(key);
        // A restore settled or failed: whether the Pod is paused, and the process id of its copies, changed.
        this.publisher.poke();
      },
      livePod: (namespace, name, uid) => {
        const pod = this.pods.get(name, namespace);
        return pod?.metadata?.uid === uid && !pod.metadata.deletionTimestamp ? pod : undefined;
      },
      requeue: (key) => this.policyQueue.add(key),
      pullNow: (uid) => this.checkpointer.pullNow(uid),
      refresh: (r) => this.refreshRecord(r.podUID),
      livePodByUID: (uid) => {
        const owner = this.checkpointer.protectedPods().find((e) => e.pod.metadata?.uid === uid)?.pod;
        const pod = owner && this.pods.get(owner.metadata!.name!, owner.metadata!.namespace);
        return pod?.metadata?.uid === uid && !pod.metadata.deletionTimestamp ? pod : undefined;
      },
      faultDetectedAt: (key) => {
        const at = this.faultAt.get(key);
        this.faultAt.delete(key);
        return at;
      },
      signal: this.term.signal,
    });
    this.detector = new FaultDetector({
      actions: apiFaultActions(kc, mayAct),
      view: this.view,
      nodes: this.nodes,
      events: this.events,
      log,
      restoring: (uid) => !this.restorer.isSettled(uid),
      // A second opinion on a silent helper, from the helper of another node (its health port admits helpers).
      indirectProbe: (via, target, timeoutMs) => this.helpers.probe(via, target, timeoutMs),
      leaderNode: () =>
        o.identity ? this.pods.get(o.identity, o.operatorNamespace)?.spec?.nodeName : undefined,
      onFault: (key) => this.faultAt.set(key, Date.now()),
      givenUp: (uid) => {
        const r = this.book.get(uid);
        if (r) r.sealed = Math.max(r.sealed ?? 0, r.lastSequence);
      },
      onHelperReadiness: (node) => {
        const ep = this.view.helpers().get(node);
        const pod = ep && this.pods.get(ep.pod, o.operatorNamespace);
        if (pod) this.helperChanged(pod, 'update');
      },
      signal: this.term.signal,
    });
    this.status = new StatusWriter(kc, (key) => this.policyReconciler.desiredStatus(key), o.metrics, log, {
      signal: this.term.signal,
      concurrency: o.workers,
    });
    this.policyReconciler = new PolicyReconciler({
      policies: this.policies,
      pods: this.pods,
      book: this.book,
      checkpointer: this.checkpointer,
      status: this.status,
      restorer: this.restorer,
      detector: this.detector,
      events: this.events,
      log,
      operatorNamespace: o.operatorNamespace,
      annotationProblems: this.annotationProblems,
    });
    this.workloadReconciler = new WorkloadReconciler({
      kc,
      workloads: this.workloads,
      policies: this.policies,
      events: this.events,
      log,
      annotationProblems: this.annotationProblems,
      onProblemChange: (key) => this.policyQueue.add(key),
    });
    const depth = () => o.metrics.queueDepth.set(this.policyQueue.depth() + this.workloadQueue.depth());
    const onError = (key: string, err: unknown, retryInMs: number) =>
      log.warn('reconcile failed, will retry', { key, error: String(err), retryInMs });
    // Policies are reconciled only once the helpers' inventories are known: a Pod looked at with an empty
    // checkpoint book would be taken for a fresh one, and a restart the previous leader missed would be lost.
    this.policyQueue = new WorkQueue(async (key) => this.policyReconciler.reconcile(key), {
      concurrency: o.workers,
      paused: true,
      onDepth: depth,
      onError,
      signal: this.term.signal,
    });
    // Workload reconciles write PullStatePolicies: a standby only queues them.
    this.workloadQueue = new WorkQueue((key) => this.workloadReconciler.reconcile(key), {
      concurrency: o.workers,
      paused: true,
      onDepth: depth,
      onError,
      signal: this.term.signal,
    });
    this.housekeeping = new WorkQueue((key) => this.housekeep(key as Chore), {
      concurrency: 3,
      onError: (key, err, retryInMs) =>
        log.warn('housekeeping failed, will retry', { key, error: String(err), retryInMs }),
      signal: this.term.signal,
    });
  }

  /** Warms up and leads at once (a replica without leader election). */
  async start(): Promise<void> {
    await this.warm();
    await this.lead();
  }

  /**
   * What a standby runs: the caches, filled and kept by their watches, and the detector's probes, which
   * only gather evidence. Every handler only queues (paused queues) or checks `synced` before acting.
   */
  async warm(): Promise<void> {
    this.policies.onChange((p) => {
      const ns = p.metadata!.namespace!;
      // Every policy of the namespace: an older policy's change decides which one protects shared Pods.
      for (const other of this.policies.list(ns)) this.policyQueue.add(policyKey(ns, other.metadata!.name!));
      this.policyQueue.add(policyKey(ns, p.metadata!.name!));
      if (this.synced) for (const pod of this.pods.list(ns)) this.gateKeeper.podChanged(pod);
      const from = p.metadata?.labels?.[LABELS.managedFrom] as AnnotatedKind | undefined;
      if (from === 'Deployment' || from === 'StatefulSet')
        this.workloadQueue.add(workloadKey(from, p.metadata!.namespace!, p.metadata!.name!));
    });
    this.pods.onChange((pod, kind) => {
      if (isHelperPod(pod, this.o.operatorNamespace)) return this.helperChanged(pod, kind);
      const uid = pod.metadata?.uid ?? '';
      // A planned move (delete, drain, rollout): the process still serves during its grace period.
      if (kind === 'update' && pod.metadata?.deletionTimestamp && this.checkpointer.ownerOf(uid)) {
        this.faultAt.set(this.checkpointer.ownerOf(uid)!, Date.now());
        void this.checkpointer.finalize(uid);
      }
      if (kind === 'delete') {
        this.restorer.forget(uid);
        this.gate.forget(uid);
      } else this.gate.podChanged(pod);
      if (this.synced) this.gateKeeper.podChanged(pod);
      for (const key of this.policyReconciler.keysForPod(pod)) this.policyQueue.add(key);
    });
    this.nodes.onChange(() => this.scheduleRetarget());
    for (const kind of ['Deployment', 'StatefulSet'] as const) {
      this.workloads[kind].onChange((w) => {
        const ns = w.metadata!.namespace!;
        const name = w.metadata!.name!;
        if (
          hasOwnAnnotations(w) ||
          this.policies.get(name, ns)?.metadata?.labels?.[LABELS.managedFrom] === kind
        ) {
          this.workloadQueue.add(workloadKey(kind, ns, name));
        }
      });
    }
    await Promise.all([
      this.nodes.start(),
      this.pods.start(),
      this.policies.start(),
      this.workloads.Deployment.start(),
      this.workloads.StatefulSet.start(),
      this.restoreRequests.startCache(),
    ]);
    // A leader's silence before the takeover counts at once: the node it ran on may be the lost one.
    this.detector.start();
  }

  /** This replica leads: from here on it writes, signs, assigns, restores and acts on faults. */
  async lead(): Promise<void> {
    const { log } = this.o;
    this.detector.lead();
    // Helpers without a certificate serve nothing: sign before reading their inventories.
    await this.signer.start();
    await this.learnInventories();
    this.collector.sync();
    this.publisher.start();
    for (const p of this.policies.list())
      this.policyQueue.add(policyKey(p.metadata!.namespace!, p.metadata!.name!));
    this.policyQueue.resume();
    this.workloadQueue.resume();
    this.restoreRequests.resume();
    // Copies on disk whose Pod nobody protects start their retention clock now (once the first reconciles
    // had 2 s to claim theirs).
    this.orphanClockAt = Date.now();
    this.housekeeping.addAfter('orphan-clock', 2000);
    this.housekeeping.addAfter('orphans', this.orphanPeriodMs());
    this.housekeeping.addAfter('inventories', INVENTORY_RETRY_MS);
    this.synced = true;
    this.o.metrics.setSampler(() => this.metricsSample());
    for (const pod of this.pods.list()) this.gateKeeper.podChanged(pod);
    log.info('controller synced', {
      policies: this.policies.list().length,
      nodes: this.nodes.list().length,
      knownCheckpoints: this.book.all().length,
    });
  }

  /**
   * Ends the term and waits, at most `drainMs`, for its work in flight (restores, gate writes, deletions) to
   * end. Resolves whether it did: only then may the Lease be released, else the next leader could start a
   * restore while this one's still lands.
   */
  async stop(drainMs = 0): Promise<boolean> {
    // Every queue, probe, poll and retry of this term ends here. The helpers keep pulling what they were last
    // assigned until the next leader takes over.
    this.term.abort();
    const drained = drainWork(this.term.signal, drainMs);
    await this.signer.stop();
    await this.restoreRequests.stop();
    await Promise.all([
      this.nodes.stop(),
      this.pods.stop(),
      this.policies.stop(),
      this.workloads.Deployment.stop(),
      this.workloads.StatefulSet.stop(),
    ]);
    const ended = await drained;
    await this.helpers.close();
    return ended;
  }

  /** Per-policy checkpoint ages and helper availability, read at scrape time. */
  private metricsSample(): MetricsSample {
    const policies = new Map<string, MetricsSample['policies'][number]>();
    for (const p of this.checkpointer.protectedPods()) {
      const newest = this.book.get(p.pod.metadata!.uid!)?.generations[0];
      const at = newest
        ? (newest.pulledAt ?? Date.parse(newest.storedAt))
        : Date.parse(String(p.pod.status?.startTime ?? p.pod.metadata?.creationTimestamp ?? new Date()));
      const entry = policies.get(p.policyKey) ?? {
        namespace: p.pod.metadata!.namespace!,
        policy: p.policy,
        intervalSeconds: p.spec.intervalSeconds,
        oldestCheckpointMs: at,
      };
      entry.oldestCheckpointMs = Math.min(entry.oldestCheckpointMs, at);
      policies.set(p.policyKey, entry);
    }
    const helpers = this.view.helpers();
    const helpersUnavailable = this.nodes
      .list()
      .filter((n) => this.view.nodeReady(n.metadata!.name!) && !helpers.get(n.metadata!.name!)?.ready).length;
    const existingPolicies = new Set(
      this.policies.list().map((p) => `${p.metadata!.namespace}/${p.metadata!.name}`),
    );
    return { policies: [...policies.values()], existingPolicies, helpersUnavailable };
  }

  /** A helper that became Ready (new node, or restarted) may hold copies this process never saw. */
  private helperChanged(pod: V1Pod, kind: 'add' | 'update' | 'delete'): void {
    const ep = kind === 'delete' ? undefined : this.view.endpoint(pod);
    const node = pod.spec?.nodeName ?? '';
    this.signer.podChanged();
    if (ep?.ready && this.knownHelpers.get(node) !== ep.url + pod.metadata?.uid) {
      this.knownHelpers.set(node, ep.url + pod.metadata?.uid);
      if (this.synced) void this.learnInventory(ep);
    } else if (!ep?.ready) this.knownHelpers.delete(node);
    if (this.synced) this.collector.sync();
    this.scheduleRetarget();
  }

  /** Reads one Pod's generations from every usable helper (briefly: a failover waits for it). */
  private async refreshRecord(podUID: string): Promise<void> {
    await Promise.all(
      [...this.view.usableHelpers()].map(async ([node, ep]) => {
        const inv = await this.helpers.inventory(ep, podUID, 1000).catch(() => undefined);
        if (inv) this.book.learnInventory(node, inv.blobs);
      }),
    );
  }

  private async learnInventories(): Promise<void> {
    await Promise.all(
      [...this.view.helpers()].map(async ([node, ep]) => {
        // Silent to this replica's probes while it stood by: most likely lost with its node (a new leader is
        // often elected because of that, and the API shows a lost node NotReady only after its grace
        // period). Not waited for: the Pods of that node are deleted only after the first reconcile.
        if (this.detector.isSuspect(node)) {
          this.o.log.info('helper silent: its inventory is read once it is ready', { node });
          this.unread.add(node);
          return;
        }
        // A helper shown not Ready, or on a NotReady node: one short try, not 16 s of a failover. An
        // inventory not read is read again every few seconds once its helper is ready ('inventories').
        if (ep.ready && this.view.nodeReady(node)) await this.learnInventory(ep);
        else await this.learnInventory(ep, 1, 1000);
      }),
    );
  }

  private async learnInventory(helper: HelperTarget, attempts = 3, timeoutMs?: number): Promise<void> {
    const { node } = helper;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        const inv = await this.helpers.inventory(helper, undefined, timeoutMs);
        this.book.learnInventory(node, inv.blobs);
        this.unread.delete(node);
        return;
      } catch (err) {
        if (attempt === attempts) {
          this.o.log.warn('could not read a helper inventory; again once it is ready', {
            node,
            error: String(err),
          });
          this.unread.add(node);
        } else await new Promise((r) => setTimeout(r, 500 * attempt));
      }
    }
  }

  /** Node or helper changes come in bursts: retarget once, 250 ms after the first. */
  private scheduleRetarget(): void {
    if (this.synced) this.housekeeping.addAfter('retarget', 250);
  }

  private orphanPeriodMs(): number {
    return Math.min(30_000, Math.max(1000, this.o.orphanRetentionMs / 4));
  }

  private async housekeep(chore: Chore): Promise<ReconcileResult> {
    switch (chore) {
      case 'retarget':
        return this.checkpointer.retarget();
      case 'orphan-clock':
        for (const r of this.book.all())
          if (!this.checkpointer.ownerOf(r.podUID)) r.orphanedSince ??= this.orphanClockAt;
        return;
      case 'inventories':
        await Promise.all(
          [...this.unread].map(async (node) => {
            const ep = this.view.helpers().get(node);
            if (!ep) this.unread.delete(node); // no helper there any more: nothing to read
            if (ep?.ready) await this.learnInventory(ep, 1, 2000);
          }),
        );
        return { requeueAfterMs: INVENTORY_RETRY_MS };
      case 'orphans':
        await collectOrphans(
          this.book,
          this.view,
          this.helpers,
          this.o.orphanRetentionMs,
          this.o.log,
          (key) => this.status.request(key),
        );
        return { requeueAfterMs: this.orphanPeriodMs() };
    }
  }
}
