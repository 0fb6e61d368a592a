import { setMaxListeners } from 'node:events';
import type { V1Pod } from '@kubernetes/client-node';
import { ANNOTATION_PREFIX, LABELS, type AnnotatedKind } from '../api/index.js';
import { policyKey } from './checkpoints/checkpoint-book.js';
import { collectOrphans } from './checkpoints/orphan-collector.js';
import { buildComponents, type Components, type ManagerOptions } from './components.js';
import { INVENTORY_RETRY_MS } from './inventories.js';
import { isHelperPod } from './kube/cluster-view.js';
import { drainWork } from './kube/in-flight.js';
import { WorkQueue, type ReconcileResult } from './kube/workqueue.js';
import { metricsSample } from './metrics-sample.js';
import { workloadKey, type Workload } from './policies/workload-reconciler.js';

export type { ManagerOptions } from './components.js';

/**
 * The leader's periodic chores: `retarget` (copies whose node or helper went away get a new one),
 * `orphan-clock` (copies nobody protects start their retention clock), `orphans` (expired copies deleted),
 * `inventories` (helper inventories that could not be read, read again).
 */
type Chore = 'retarget' | 'orphan-clock' | 'orphans' | 'inventories';

const hasOwnAnnotations = (w: Workload) =>
  Object.keys(w.metadata?.annotations ?? {}).some((k) => k.startsWith(ANNOTATION_PREFIX));

/**
 * Everything the leader runs (built by components.ts): caches, reconcilers and the checkpoint schedule. A
 * standby keeps the caches and the detector's helper probes warm (`warm`, observing only, as
 * controller-runtime starts caches before the election); everything that writes or calls helpers starts with
 * `lead`, from the API and the helpers' inventories alone, so a takeover loses nothing and costs no cold start.
 * Here: the term's lifecycle, and which component each cache event goes to.
 */
export class Manager {
  /** The term's components. */
  readonly c: Components;
  /** The leader's own periodic chores, as keys of one queue (see `Chore`). */
  private readonly housekeeping: WorkQueue;
  /** When this term started: copies nobody protects count their retention from then. */
  private orphanClockAt = 0;
  private knownHelpers = new Map<string, string>();
  /** One signal ends everything this leadership term started. */
  private readonly term = new AbortController();
  synced = false;

  constructor(private readonly o: ManagerOptions) {
    // Every queue, informer and loop of the term listens to its signal: more than node's default of 10.
    setMaxListeners(0, this.term.signal);
    this.c = buildComponents(o, this.term.signal, (node) => {
      const ep = this.c.view.helpers().get(node);
      const pod = ep && this.c.caches.pods.get(ep.pod, o.operatorNamespace);
      if (pod) this.helperChanged(pod, 'update');
    });
    this.housekeeping = new WorkQueue((key) => this.housekeep(key as Chore), {
      concurrency: 3,
      onError: (key, err, retryInMs) =>
        o.log.warn('housekeeping failed, will retry', { key, error: String(err), retryInMs }),
      signal: this.term.signal,
      clock: this.c.clock,
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
    this.c.caches.policies.onChange((p) => {
      const ns = p.metadata!.namespace!;
      // Every policy of the namespace: an older policy's change decides which one protects shared Pods.
      for (const other of this.c.caches.policies.list(ns))
        this.c.policyQueue.add(policyKey(ns, other.metadata!.name!));
      this.c.policyQueue.add(policyKey(ns, p.metadata!.name!));
      if (this.synced) for (const pod of this.c.caches.pods.list(ns)) this.c.gateKeeper.podChanged(pod);
      const from = p.metadata?.labels?.[LABELS.managedFrom] as AnnotatedKind | undefined;
      if (from === 'Deployment' || from === 'StatefulSet')
        this.c.workloadQueue.add(workloadKey(from, p.metadata!.namespace!, p.metadata!.name!));
    });
    this.c.caches.pods.onChange((pod, kind) => {
      if (isHelperPod(pod, this.o.operatorNamespace)) return this.helperChanged(pod, kind);
      const uid = pod.metadata?.uid ?? '';
      // A planned move (delete, drain, rollout): the process still serves during its grace period.
      if (kind === 'update' && pod.metadata?.deletionTimestamp && this.c.checkpointer.ownerOf(uid)) {
        this.c.faultAt.set(this.c.checkpointer.ownerOf(uid)!, this.c.clock.now());
        void this.c.checkpointer.finalize(uid);
      }
      if (kind === 'delete') {
        this.c.restorer.forget(uid);
        this.c.gate.forget(uid);
      } else this.c.gate.podChanged(pod);
      if (this.synced) this.c.gateKeeper.podChanged(pod);
      for (const key of this.c.policyReconciler.keysForPod(pod)) this.c.policyQueue.add(key);
    });
    this.c.caches.nodes.onChange(() => this.scheduleRetarget());
    for (const kind of ['Deployment', 'StatefulSet'] as const) {
      this.c.caches.workloads[kind].onChange((w) => {
        const ns = w.metadata!.namespace!;
        const name = w.metadata!.name!;
        if (
          hasOwnAnnotations(w) ||
          this.c.caches.policies.get(name, ns)?.metadata?.labels?.[LABELS.managedFrom] === kind
        ) {
          this.c.workloadQueue.add(workloadKey(kind, ns, name));
        }
      });
    }
    await Promise.all([this.c.caches.start(), this.c.restoreRequests.startCache()]);
    // A leader's silence before the takeover counts at once: the node it ran on may be the lost one.
    this.c.detector.start();
  }

  /** This replica leads: from here on it writes, signs, assigns, restores and acts on faults. */
  async lead(): Promise<void> {
    const { log } = this.o;
    this.c.detector.lead();
    // Helpers without a certificate serve nothing: sign before reading their inventories.
    await this.c.signer.start();
    await this.c.inventories.learnAll();
    this.c.collector.sync();
    this.c.publisher.start();
    for (const p of this.c.caches.policies.list())
      this.c.policyQueue.add(policyKey(p.metadata!.namespace!, p.metadata!.name!));
    this.c.policyQueue.resume();
    this.c.workloadQueue.resume();
    this.c.restoreRequests.resume();
    // Copies on disk whose Pod nobody protects start their retention clock now (once the first reconciles
    // had 2 s to claim theirs).
    this.orphanClockAt = this.c.clock.now();
    this.housekeeping.addAfter('orphan-clock', 2000);
    this.housekeeping.addAfter('orphans', this.orphanPeriodMs());
    this.housekeeping.addAfter('inventories', INVENTORY_RETRY_MS);
    this.synced = true;
    this.o.metrics.setSampler(() =>
      metricsSample({
        protectedPods: this.c.checkpointer.protectedPods(),
        book: this.c.book,
        view: this.c.view,
        nodes: this.c.caches.nodes.list(),
        policies: this.c.caches.policies.list(),
      }),
    );
    for (const pod of this.c.caches.pods.list()) this.c.gateKeeper.podChanged(pod);
    log.info('controller synced', {
      policies: this.c.caches.policies.list().length,
      nodes: this.c.caches.nodes.list().length,
      knownCheckpoints: this.c.book.all().length,
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
    const drained = drainWork(this.term.signal, drainMs, this.c.clock);
    await this.c.signer.stop();
    await this.c.restoreRequests.stop();
    await this.c.caches.stop();
    const ended = await drained;
    await this.c.helpers.close();
    return ended;
  }

  /** A helper that became Ready (new node, or restarted) may hold copies this process never saw. */
  private helperChanged(pod: V1Pod, kind: 'add' | 'update' | 'delete'): void {
    const ep = kind === 'delete' ? undefined : this.c.view.endpoint(pod);
    const node = pod.spec?.nodeName ?? '';
    this.c.signer.podChanged();
    if (ep?.ready && this.knownHelpers.get(node) !== ep.url + pod.metadata?.uid) {
      this.knownHelpers.set(node, ep.url + pod.metadata?.uid);
      if (this.synced) void this.c.inventories.learn(ep);
    } else if (!ep?.ready) this.knownHelpers.delete(node);
    if (this.synced) this.c.collector.sync();
    this.scheduleRetarget();
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
        return this.c.checkpointer.retarget();
      case 'orphan-clock':
        for (const r of this.c.book.all())
          if (!this.c.checkpointer.ownerOf(r.podUID)) r.orphanedSince ??= this.orphanClockAt;
        return;
      case 'inventories':
        await this.c.inventories.retryUnread();
        return { requeueAfterMs: INVENTORY_RETRY_MS };
      case 'orphans':
        await collectOrphans(
          this.c.book,
          this.c.view,
          this.c.helpers,
          this.o.orphanRetentionMs,
          this.o.log,
          (key) => this.c.status.request(key),
          this.c.clock.now(),
        );
        return { requeueAfterMs: this.orphanPeriodMs() };
    }
  }
}
