import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../runtime/logger.js';
import { systemClock, type Clock } from './kube/clock.js';
import type { HelperCredentials } from '../kube/bearer-token.js';
import type { CertificateAuthority } from '../tls/pki.js';
import { Caches } from './caches.js';
import { CheckpointBook, policyKey } from './checkpoints/checkpoint-book.js';
import { Checkpointer } from './checkpoints/checkpointer.js';
import { AssignmentPublisher } from './checkpoints/assignment-publisher.js';
import { ReportCollector } from './checkpoints/report-collector.js';
import { ClusterView, isHelperPod } from './kube/cluster-view.js';
import { EventRecorder } from './kube/events.js';
import { HelperClient } from './kube/helper-client.js';
import { WorkQueue } from './kube/workqueue.js';
import type { ControllerMetrics } from './metrics.js';
import { InventoryReader } from './inventories.js';
import { PolicyReconciler } from './policies/policy-reconciler.js';
import { StatusWriter } from './policies/status-writer.js';
import { WorkloadReconciler } from './policies/workload-reconciler.js';
import { FaultDetector, apiFaultActions } from './failover/fault-detector.js';
import { FenceLedger } from './failover/fence-ledger.js';
import { Restorer } from './restores/restorer.js';
import { GateKeeper } from './restores/gate-keeper.js';
import { apiConditionPatch, GateWriter } from './restores/readiness-gate.js';
import { RestoreRequestReconciler } from './restores/restore-requests.js';
import { HelperCertificateSigner } from './certificates/helper-signer.js';

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
  /** Every component's clock (tests pass a fake one). */
  clock?: Clock;
}

export type Components = ReturnType<typeof buildComponents>;

/**
 * Builds what one leadership term runs, bottom-up: the caches, the API and helper clients, the checkpoint
 * book, the fence ledger and the cluster view depend on nothing else; the rest in the order of their
 * dependencies. Every component gets only what it uses (narrow interfaces). A few edges go both ways, and
 * are closures over components built further down, called only once the term runs (`Manager.warm`):
 * - checkpointer ⇄ restorer: a Pod is pulled only once its restore settled, a pull tells the restorer of a
 *   restart or a state kept; the restorer pulls a Pod to learn which process answers.
 * - status writer ⇄ policy reconciler: the writer asks for the status to write, the reconciler asks for writes.
 * - gate keeper, fault detector → policy reconciler and restorer: which policy selects a Pod, whether a Pod is
 *   being restored.
 * - notifications to the status writer, the assignment publisher and the policy queue, from components built
 *   before them.
 * `onHelperReadiness` is the manager's: a helper's readiness to the leader's probe changed.
 */
export function buildComponents(
  o: ManagerOptions,
  signal: AbortSignal,
  onHelperReadiness: (node: string) => void,
) {
  const { kc, log, metrics } = o;
  const clock = o.clock ?? systemClock;
  const caches = new Caches(kc, log);
  const { pods, nodes, policies } = caches;
  const events = new EventRecorder(kc, log, undefined, clock);
  const mayAct = o.mayAct ?? (() => true);
  const helpers = new HelperClient(o.helperCredentials, o.ca.certPem, mayAct);
  const book = new CheckpointBook();
  const fences = new FenceLedger(nodes);
  const view = new ClusterView(nodes, pods, o.operatorNamespace, (node) => fences.isFenced(node));
  const gate = new GateWriter({
    patch: apiConditionPatch(kc),
    currentPod: caches.currentPod,
    log,
    signal,
    clock,
  });
  /** When the fault behind a policy's replacement Pod was acted on, for the detection-to-ready histogram. */
  const faultAt = new Map<string, number>();
  /** Problems of annotated workloads, by the managed policy's key. */
  const annotationProblems = new Map<string, string>();
  const signer = new HelperCertificateSigner({
    kc,
    ca: o.ca,
    operatorNamespace: o.operatorNamespace,
    helperUser: o.helperUser,
    pod: (ns, name) => pods.get(name, ns),
    isHelperPod: (pod) => isHelperPod(pod, o.operatorNamespace),
    validityMs: o.helperCertValidityMs,
    signal,
    log,
    events,
  });
  const inventories: InventoryReader = new InventoryReader({
    book,
    view,
    helpers,
    log,
    isSuspect: (node) => detector.isSuspect(node),
    clock,
  });
  const checkpointer: Checkpointer = new Checkpointer({
    book,
    podNodes: caches.podNodes,
    view,
    helpers,
    metrics,
    events,
    log,
    onChange: (key) => status.request(key),
    onAssignmentsChange: () => publisher.poke(),
    mayPull: (pod) => restorer.mayPull(pod.metadata!.uid!),
    onStored: (uid) => restorer.stateKept(uid),
    onRestart: (entry, instance) => restorer.restartSeen(entry.policyKey, entry.pod.metadata!.uid!, instance),
    signal,
    clock,
  });
  const publisher: AssignmentPublisher = new AssignmentPublisher({
    helpers,
    endpoints: () => view.helpers(),
    build: () => checkpointer.assignments(),
    holds: () => checkpointer.holds(),
    log,
    signal,
    clock,
  });
  const restoreRequests = new RestoreRequestReconciler({
    kc,
    log,
    events,
    helpers,
    policyExists: (ns, name) => policies.get(name, ns) !== undefined,
    protectedPods: (ns, name) =>
      checkpointer.protectedPods().filter((p) => p.policyKey === policyKey(ns, name) && p.pod.status?.podIP),
    record: (uid) => book.get(uid),
    refresh: (uid) => inventories.refresh(uid),
    usableHelpers: () => view.usableHelpers(),
    signal,
    clock,
  });
  const restorer: Restorer = new Restorer({
    gate,
    book,
    view,
    helpers,
    events,
    metrics,
    log,
    onChange: (key) => {
      status.request(key);
      // A restore settled or failed: whether the Pod is paused, and the process id of its copies, changed.
      publisher.poke();
    },
    livePod: caches.livePod,
    requeue: (key) => policyQueue.add(key),
    pullNow: (uid) => checkpointer.pullNow(uid),
    refresh: (r) => inventories.refresh(r.podUID),
    livePodByUID: (uid) => {
      const owner = checkpointer.protectedPods().find((e) => e.pod.metadata?.uid === uid)?.pod;
      return owner && caches.livePod(owner.metadata!.namespace!, owner.metadata!.name!, uid);
    },
    faultDetectedAt: (key) => {
      const at = faultAt.get(key);
      faultAt.delete(key);
      return at;
    },
    signal,
    clock,
  });
  const detector: FaultDetector = new FaultDetector({
    actions: apiFaultActions(kc, mayAct),
    view,
    nodes,
    fences,
    events,
    log,
    restoring: (uid) => !restorer.isSettled(uid),
    // A second opinion on a silent helper, from the helper of another node (its health port admits helpers).
    indirectProbe: (via, target, timeoutMs) => helpers.probe(via, target, timeoutMs),
    leaderNode: () => (o.identity ? pods.get(o.identity, o.operatorNamespace)?.spec?.nodeName : undefined),
    onFault: (key) => faultAt.set(key, clock.now()),
    givenUp: (uid) => {
      const r = book.get(uid);
      if (r) r.sealed = Math.max(r.sealed ?? 0, r.lastSequence);
    },
    onHelperReadiness,
    signal,
    clock,
  });
  const collector = new ReportCollector({
    helpers,
    endpoints: () => view.helpers(),
    apply: (_node, reports) => checkpointer.applyReports(reports),
    faults: (node, faults) => {
      for (const f of faults) detector.podFaultReported(node, f);
    },
    helperRestarted: (node) => publisher.forget(node),
    log,
    signal,
    clock,
  });
  const status: StatusWriter = new StatusWriter(
    kc,
    (key) => policyReconciler.desiredStatus(key),
    metrics,
    log,
    {
      signal,
      concurrency: o.workers,
    },
  );
  const policyReconciler: PolicyReconciler = new PolicyReconciler({
    policies,
    pods,
    book,
    checkpointer,
    status,
    restorer,
    detector,
    events,
    log,
    operatorNamespace: o.operatorNamespace,
    annotationProblems,
    clock,
  });
  const gateKeeper = new GateKeeper({
    gate,
    events,
    log,
    currentPod: caches.currentPod,
    selected: (pod) => policyReconciler.keysForPod(pod).length > 0,
    refusal: (pod) => policyReconciler.refusal(pod),
    signal,
    clock,
  });
  const workloadReconciler = new WorkloadReconciler({
    kc,
    workloads: caches.workloads,
    policies,
    events,
    log,
    annotationProblems,
    onProblemChange: (key) => policyQueue.add(key),
  });
  const depth = () => metrics.queueDepth.set(policyQueue.depth() + workloadQueue.depth());
  const onError = (key: string, err: unknown, retryInMs: number) =>
    log.warn('reconcile failed, will retry', { key, error: String(err), retryInMs });
  // Both start paused. Policies are reconciled only once the helpers' inventories are known: a Pod looked at
  // with an empty checkpoint book would be taken for a fresh one, and a restart the previous leader missed
  // would be lost. Workload reconciles write PullStatePolicies: a standby only queues them.
  const reconcilerQueue = { concurrency: o.workers, paused: true, onDepth: depth, onError, signal, clock };
  const policyQueue: WorkQueue = new WorkQueue(
    async (key) => policyReconciler.reconcile(key),
    reconcilerQueue,
  );
  const workloadQueue: WorkQueue = new WorkQueue((key) => workloadReconciler.reconcile(key), reconcilerQueue);
  return {
    clock,
    caches,
    events,
    helpers,
    book,
    fences,
    view,
    gate,
    faultAt,
    signer,
    inventories,
    checkpointer,
    publisher,
    restoreRequests,
    restorer,
    detector,
    collector,
    status,
    policyReconciler,
    gateKeeper,
    workloadReconciler,
    policyQueue,
    workloadQueue,
  };
}
