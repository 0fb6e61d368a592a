import type { V1ObjectReference, V1Pod } from '@kubernetes/client-node';
import {
  API_VERSION,
  KIND,
  REASONS,
  type PullAssignment,
  type PullReport,
  type ResolvedSpec,
} from '../../api/index.js';
import { errorMessage, type Logger } from '../../runtime/logger.js';
import type { Hold } from './assignment-publisher.js';
import {
  addCopy,
  copyOf,
  dropCopiesOnNode,
  keepOnNode,
  newestCopy,
  pastSeal,
  type CheckpointBook,
  type CheckpointRecord,
} from './checkpoint-book.js';
import { appRestartCount } from '../kube/app-container.js';
import type { ClusterView, HelperEndpoint } from '../kube/cluster-view.js';
import type { EventRecorder } from '../kube/events.js';
import type { HelperClient } from '../kube/helper-client.js';
import type { ControllerMetrics } from '../metrics.js';
import { probeTarget } from '../failover/probe-target.js';
import { chooseTargets } from './target-nodes.js';
import { hostNetworkMark } from '../policies/host-network.js';

/** Why nothing is checkpointed, and what the user can do about it. */
function noTargetMessage(e: ProtectedPod): string {
  const node = e.pod.spec?.nodeName ?? '';
  return e.spec.sameNodeCopy === 'WhenNoOtherNode'
    ? `no node has a Ready helper to hold a copy, not even ${node}`
    : `no node but the Pod's own (${node}) has a Ready helper, and a copy there would die with it; ` +
        `set sameNodeCopy: WhenNoOtherNode to keep one there (a single-node cluster), or add a node`;
}

/** Pause between the final pulls of a terminating Pod, and how long they may go on at most. */
const FINAL_PULL_GAP_MS = 100;
/** A claimed final copy is restored after this long even if the app still changes its state (not at SIGTERM). */
const FINAL_SETTLE_MAX_MS = 2000;
const FINAL_PULLS_MAX_MS = 30_000;
/** A copy pulled within this many intervals means the Pod's helper is pulling it, whatever the API shows. */
const STILL_PULLED_INTERVALS = 3;

export interface ProtectedPod {
  policyKey: string;
  policy: string;
  policyUID: string;
  /** The Pod's workload (`workloadOf`): an orphan of another workload is never restored into this Pod. */
  workload?: string;
  spec: ResolvedSpec;
  pod: V1Pod;
}

interface Schedule {
  entry: ProtectedPod;
  /** A one-off pull this process asked for is running; another one joins it. */
  busy: boolean;
  running?: Promise<void>;
  /** Final pulls of a terminating Pod run one-off, not on the helper's timer. */
  finalizing?: boolean;
}

export interface CheckpointerDeps {
  book: CheckpointBook;
  /** The node of every Pod by UID, from the informer's cache (for Pods known only by their copies). */
  podNodes?: () => Map<string, string>;
  view: ClusterView;
  helpers: HelperClient;
  metrics: ControllerMetrics;
  events: EventRecorder;
  log: Logger;
  /** A policy's checkpoints changed (status to write). */
  onChange: (policyKey: string) => void;
  /** What helpers pull changed (a Pod protected or not, new targets): publish the assignments. */
  onAssignmentsChange?: () => void;
  /** False while a Pod must not be pulled (its restore is not done yet). */
  mayPull?: (pod: V1Pod) => boolean;
  /** A pull was answered by a new process of the app (its identity changed): it restarted, restore it now. */
  onRestart?: (entry: ProtectedPod, instance: string | undefined) => void;
  /** A pull of the Pod was stored. */
  onStored?: (podUID: string) => void;
  /** Ends the one-off and final pulls this process runs (leadership lost, shutdown). */
  signal?: AbortSignal;
}

export const podRef = (pod: V1Pod): V1ObjectReference => ({
  apiVersion: 'v1',
  kind: 'Pod',
  name: pod.metadata?.name,
  namespace: pod.metadata?.namespace,
  uid: pod.metadata?.uid,
});

export const policyRef = (
  e: Pick<ProtectedPod, 'policy' | 'policyUID'> & { namespace?: string },
): V1ObjectReference => ({
  apiVersion: API_VERSION,
  kind: KIND,
  name: e.policy,
  namespace: e.namespace,
  uid: e.policyUID,
});

/**
 * Decides what is checkpointed: which Pods, with which spec, to which nodes. The helper of each Pod's node
 * pulls it on its own timer and streams the copies to the target helpers (the bytes never pass through the
 * controller); the outcomes come back as reports. A failed pull never touches the stored copies; it is
 * recorded on the checkpoint and surfaces as the policy's Degraded condition and a Warning Event.
 */
export class Checkpointer {
  private schedules = new Map<string, Schedule>();

  constructor(private readonly d: CheckpointerDeps) {}

  private get stopped(): boolean {
    return this.d.signal?.aborted ?? false;
  }

  /** Makes `entries` the Pods protected by `policyKey`: new ones are assigned, changed ones updated, the rest dropped. */
  sync(policyKey: string, entries: ProtectedPod[]): void {
    const wanted = new Map(entries.map((e) => [e.pod.metadata!.uid!, e]));
    for (const [uid, s] of this.schedules) {
      if (s.entry.policyKey === policyKey && !wanted.has(uid)) this.unschedule(uid);
    }
    for (const [uid, entry] of wanted) {
      const s = this.schedules.get(uid);
      if (s && s.entry.policyKey !== policyKey) continue; // another policy protects it already
      if (!s) this.schedules.set(uid, { entry, busy: false });
      else s.entry = entry;
      this.d.book.ensure({
        namespace: entry.pod.metadata!.namespace!,
        policy: entry.policy,
        policyUID: entry.policyUID,
        pod: entry.pod.metadata!.name!,
        podUID: uid,
        ...(entry.workload !== undefined ? { workload: entry.workload } : {}),
        podNode: entry.pod.spec?.nodeName,
      }).orphanedSince = undefined;
    }
    this.d.metrics.protectedPods.set(this.schedules.size);
    this.d.onAssignmentsChange?.();
  }

  stopPolicy(policyKey: string): void {
    this.sync(policyKey, []);
  }

  /** The policy protecting a Pod now, if any. */
  ownerOf(podUID: string): string | undefined {
    return this.schedules.get(podUID)?.entry.policyKey;
  }

  protectedPods(): ProtectedPod[] {
    return [...this.schedules.values()].map((s) => s.entry);
  }

  /**
   * What each node's helper pulls now, by node. Pods whose node has no Ready helper are reported as failing
   * (nobody can pull them); a Pod being restored is sent paused so its start state never replaces the copies.
   */
  assignments(): Map<string, PullAssignment[]> {
    const usable = this.d.view.usableHelpers();
    const pullers = this.d.view.helpers();
    const load = this.d.book.loadByNode();
    const out = new Map<string, PullAssignment[]>();
    for (const [uid, s] of this.schedules) {
      const node = s.entry.pod.spec?.nodeName;
      if (!node || !s.entry.pod.status?.podIP || s.finalizing) continue;
      const r = this.d.book.get(uid);
      if (!r) continue;
      if (!pullers.get(node)?.ready) {
        // After a node heals, the API shows its helper not Ready for a while as it goes on pulling with its
        // last assignments: a Pod whose copies keep coming is not failing (else every report would clear
        // the failure and the next rebuild record it again). Once per outage, not at every rebuild.
        const pulledAt = newestCopy(r)?.pulledAt ?? 0;
        const fresh = Date.now() - pulledAt < STILL_PULLED_INTERVALS * s.entry.spec.intervalSeconds * 1000;
        if (!fresh && r.lastFailure?.reason !== REASONS.helperUnavailable)
          this.failed(
            s.entry,
            r,
            REASONS.helperUnavailable,
            `no Ready helper on node ${node} to pull the Pod`,
          );
        continue;
      }
      const a = this.assignment(s.entry, r, usable, load);
      const list = out.get(node) ?? [];
      list.push(a);
      out.set(node, list);
    }
    return out;
  }

  /**
   * Every Pod whose copies the helpers may take, with the node whose helper pulls it: the Pods scheduled now,
   * also one being finalized, and every Pod the book has copies of (learned from the inventories at a
   * takeover, before the first reconciles). Each helper gets all of them but its own node's, so a change of
   * targets, a new target or a final pull never waits for the list to reach the target first.
   */
  holds(): Hold[] {
    const found = new Map<string, Hold>();
    for (const [uid, s] of this.schedules) {
      const node = s.entry.pod.spec?.nodeName;
      if (node)
        found.set(uid, {
          namespace: s.entry.pod.metadata!.namespace!,
          podUID: uid,
          node,
          ...(s.entry.spec.sameNodeCopy === 'WhenNoOtherNode' ? { selfHeld: true } : {}),
        });
    }
    let podNodes: Map<string, string> | undefined;
    for (const r of this.d.book.all()) {
      if (found.has(r.podUID)) continue;
      const node = r.podNode ?? (podNodes ??= this.d.podNodes?.() ?? new Map<string, string>()).get(r.podUID);
      // A Pod no longer scheduled (being deleted: its final pulls) whose copies are on its own node keeps its
      // own node's helper as their holder.
      if (node)
        found.set(r.podUID, {
          namespace: r.namespace,
          podUID: r.podUID,
          node,
          ...(r.copies.has(node) ? { selfHeld: true } : {}),
        });
    }
    return [...found.values()].sort((a, b) => (a.podUID < b.podUID ? -1 : a.podUID > b.podUID ? 1 : 0));
  }

  /** Applies the reports of a node's helper (its scheduled pulls). */
  applyReports(reports: readonly PullReport[]): void {
    for (const report of reports) {
      try {
        this.apply(report, false);
      } catch (err) {
        this.d.log.error('pull report not applied', { podUID: report.podUID, error: errorMessage(err) });
      }
    }
  }

  /** Pulls a Pod now (a restart check, or it is about to be deleted). */
  pullNow(podUID: string): Promise<void> {
    const s = this.schedules.get(podUID);
    if (!s) return Promise.resolve();
    return this.run(podUID, s);
  }

  /** Re-sends copies whose node or helper is no longer usable to a new target at once. */
  retarget(): void {
    const usable = this.d.view.usableHelpers();
    for (const [uid, s] of this.schedules) {
      const r = this.d.book.get(uid);
      if (!r || s.busy) continue;
      const valid = [...r.copies.keys()].filter((n) => usable.has(n) && n !== r.podNode).length;
      const others = [...usable.keys()].filter((n) => n !== r.podNode).length;
      // A copy on the Pod's own node (sameNodeCopy) counts for nothing once another node can hold one.
      if (r.copies.size > 0 && valid < Math.min(s.entry.spec.copies, others)) void this.run(uid, s);
    }
    this.d.onAssignmentsChange?.();
  }

  private assignment(
    e: ProtectedPod,
    r: CheckpointRecord,
    usable: Map<string, HelperEndpoint>,
    load: Map<string, number>,
  ): PullAssignment {
    const pod = e.pod;
    const current = [...r.copies.values()].sort((a, b) => b.sequence - a.sequence).map((c) => c.node);
    const targets = chooseTargets({
      podNode: pod.spec?.nodeName ?? '',
      copies: e.spec.copies,
      current,
      candidates: [...usable.keys()].map((node) => ({ node, load: load.get(node) ?? 0 })),
      key: r.podUID,
      sameNodeWhenAlone: e.spec.sameNodeCopy === 'WhenNoOtherNode',
    });
    return {
      namespace: r.namespace,
      policy: e.policy,
      policyUID: e.policyUID,
      pod: r.pod,
      podUID: r.podUID,
      ...(e.workload !== undefined ? { workload: e.workload } : {}),
      podIP: pod.status!.podIP!,
      ...hostNetworkMark(pod, e.spec),
      port: e.spec.port,
      path: e.spec.path,
      intervalMs: Math.round(e.spec.intervalSeconds * 1000),
      timeoutMs: Math.round(e.spec.timeoutSeconds * 1000),
      maxBytes: e.spec.maxStateBytes,
      restartCount: appRestartCount(pod, e.spec),
      targets: targets.map((node) => ({ node, url: usable.get(node)!.url })),
      ...(r.instance !== undefined ? { instance: r.instance } : {}),
      lastSequence: r.lastSequence,
      ...(this.d.mayPull && !this.d.mayPull(pod) ? { paused: true } : {}),
      ...(e.spec.mode === 'http-sf'
        ? {
            probe: {
              ...probeTarget(pod, e.spec),
              periodMs: e.spec.failover.periodMilliseconds,
              failureThreshold: e.spec.failover.failureThreshold,
            },
          }
        : {}),
    };
  }

  private unschedule(uid: string): void {
    const s = this.schedules.get(uid);
    if (!s) return;
    this.schedules.delete(uid);
    const r = this.d.book.get(uid);
    if (r) r.orphanedSince ??= Date.now();
  }

  private run(uid: string, s: Schedule): Promise<void> {
    if (s.busy) return s.running ?? Promise.resolve();
    if (this.d.mayPull && !this.d.mayPull(s.entry.pod)) return Promise.resolve();
    s.busy = true;
    s.running = (async () => {
      try {
        if (this.schedules.get(uid) === s && !this.stopped) await this.pullOnce(s.entry);
      } catch (err) {
        this.d.log.error('pull crashed', { pod: s.entry.pod.metadata?.name, error: errorMessage(err) });
      } finally {
        s.busy = false;
        s.running = undefined;
      }
    })();
    return s.running;
  }

  /** One pull by the Pod's node's helper, now; false if it failed (reported as a failure unless `quiet`). */
  private async pullOnce(e: ProtectedPod, quiet = false): Promise<boolean> {
    const pod = e.pod;
    const r = this.d.book.ensure({
      namespace: pod.metadata!.namespace!,
      policy: e.policy,
      policyUID: e.policyUID,
      pod: pod.metadata!.name!,
      podUID: pod.metadata!.uid!,
      ...(e.workload !== undefined ? { workload: e.workload } : {}),
      podNode: pod.spec?.nodeName,
    });
    const node = pod.spec?.nodeName ?? '';
    // Not through a helper whose node is NotReady or fenced: the call could only time out.
    const puller = this.d.view.usableHelpers().get(node);
    if (!puller || !pod.status?.podIP) {
      if (!quiet)
        this.failed(e, r, REASONS.helperUnavailable, `no Ready helper on node ${node} to pull the Pod`);
      return false;
    }
    const a = this.assignment(e, r, this.d.view.usableHelpers(), this.d.book.loadByNode());
    let report: PullReport;
    try {
      report = await this.d.helpers.pull(puller, a);
    } catch (err) {
      if (!quiet)
        this.failed(
          e,
          r,
          REASONS.helperUnavailable,
          `helper on node ${node} did not pull: ${errorMessage(err)}`,
        );
      return false;
    }
    return this.apply(report, quiet);
  }

  /** Records a pull's outcome; true if copies were stored. */
  private apply(report: PullReport, quiet: boolean): boolean {
    const r = this.d.book.get(report.podUID);
    if (!r) return false;
    const s = this.schedules.get(report.podUID);
    const e = s?.entry;
    this.d.metrics.pullSeconds.observe(report.durationMs / 1000);
    if (!report.ok && report.reason === 'Restarted') {
      // The process that answered is the one restored already (this report was on its way meanwhile).
      if (report.instance !== undefined && report.instance === r.instance) return false;
      // Seen before the API shows the restart: nothing was stored, the copies still hold the old process's state.
      this.d.log.info('the app restarted (new process identity); restoring its last checkpoint', {
        pod: r.pod,
        namespace: r.namespace,
        instance: report.instance,
        was: r.instance,
      });
      if (!newestCopy(r)) {
        // Nothing to restore: the new process's copies are the ones to keep from now on.
        r.instance = report.instance;
        this.d.onAssignmentsChange?.();
      } else if (e) this.d.onRestart?.(e, report.instance);
      return false;
    }
    if (!report.ok) {
      if (!e) return false;
      const reason =
        report.reason === 'StateTooLarge'
          ? REASONS.stateTooLarge
          : report.reason === 'StorageFull'
            ? REASONS.storageFull
            : report.reason === 'HelperUnavailable'
              ? REASONS.helperUnavailable
              : report.reason === 'NoTargetNode'
                ? REASONS.noTargetNode
                : REASONS.pullFailed;
      // An app that has not answered since it (re)started is starting, not failing: a JVM or an app that
      // loads data may need minutes. Its first good pull starts the clock; the kubelet judges its start-up.
      const starting =
        reason === REASONS.pullFailed &&
        ![...r.copies.values()].some((c) => c.restartCount === appRestartCount(e.pod, e.spec));
      if (starting) {
        this.d.metrics.pulls.inc(r, 'Failed');
        this.d.log.debug('app not answering yet since its start', { pod: r.pod, namespace: r.namespace });
      } else if (!quiet)
        this.failed(e, r, reason, reason === REASONS.noTargetNode ? noTargetMessage(e) : report.message);
      return false;
    }
    if (pastSeal(r, report.sequence)) {
      this.discardAfterSeal(r, report);
      return false;
    }
    this.d.metrics.pulls.inc(r, 'Succeeded');
    this.d.metrics.pullBytes.observe(report.sizeBytes);
    // Reports of one Pod come in order; a one-off pull's answer may overtake a scheduled one's report.
    const newest = report.sequence >= r.lastSequence;
    r.lastSequence = Math.max(r.lastSequence, report.sequence);
    for (const { node, meta } of report.stored) {
      addCopy(r, copyOf(node, meta));
      if (meta.kept) keepOnNode(r, node, meta.kept);
    }
    if (newest) {
      r.instance = report.instance;
      // Copies on nodes that are no longer targets are stale now; drop them so restores never pick them.
      for (const node of [...r.copies.keys()]) {
        if (!report.targets.includes(node)) {
          dropCopiesOnNode(r, node);
          const ep = this.d.view.helpers().get(node);
          if (ep) void this.d.helpers.delete(ep, r.namespace, r.podUID).catch(() => undefined);
        }
      }
    }
    if (!e) return true;
    this.d.onStored?.(r.podUID);
    if (r.restoredFrom) this.dropRestoredOrphan(r.restoredFrom);
    r.restoredFrom = undefined;
    const recovered = r.lastFailure !== undefined;
    r.lastFailure = undefined;
    if (recovered) this.d.log.info('pulls recovered', { pod: r.pod, namespace: r.namespace });
    this.d.onChange(e.policyKey);
    if (report.failed.length > 0) {
      this.d.log.warn('some copies failed', { pod: r.pod, failed: report.failed });
    }
    return true;
  }

  /** Drops the copies of a pull made after the Pod was given up or its state went to a replacement. */
  private discardAfterSeal(r: CheckpointRecord, report: Extract<PullReport, { ok: true }>): void {
    this.d.log.warn('a Pod given up for lost still runs: its copies from after that are discarded', {
      pod: r.pod,
      namespace: r.namespace,
      node: r.podNode,
      sequence: report.sequence,
      sealed: r.sealed,
    });
    const endpoints = this.d.view.helpers();
    for (const { node } of report.stored) {
      const ep = endpoints.get(node);
      if (ep) void this.d.helpers.delete(ep, r.namespace, r.podUID, r.sealed).catch(() => undefined);
    }
  }

  /** The orphan a Pod was restored from is redundant once that Pod has a checkpoint of its own. */
  private dropRestoredOrphan(orphanUID: string): void {
    const orphan = this.d.book.get(orphanUID);
    if (!orphan || this.schedules.has(orphanUID)) return;
    const endpoints = this.d.view.helpers();
    for (const node of orphan.copies.keys()) {
      const ep = endpoints.get(node);
      if (ep) void this.d.helpers.delete(ep, orphan.namespace, orphanUID).catch(() => undefined);
    }
    this.d.book.delete(orphanUID);
  }

  /**
   * A protected Pod is being deleted while its process may still serve (drain, rollout, `kubectl delete`):
   * keep pulling it until its replacement claims the copy, so the copy restored is the one taken after the
   * app got SIGTERM and stopped changing its state. The kubelet delivers SIGTERM a moment after the
   * deletion shows in the watch; a single pull at once would miss what the app did in that moment.
   */
  async finalize(podUID: string): Promise<void> {
    const s = this.schedules.get(podUID);
    const r = this.d.book.get(podUID);
    // `s.finalizing` stays set until the Pod is unscheduled (`r.finalizing` drops between pulls): every update
    // of the terminating Pod calls this again, and a second loop doubled the pulls and broke the settling.
    if (!s || !r || s.finalizing) return;
    r.finalizing = true;
    s.finalizing = true;
    this.d.onAssignmentsChange?.();
    const graceMs = (s.entry.pod.metadata?.deletionGracePeriodSeconds ?? 30) * 1000;
    const deadline = Date.now() + Math.min(graceMs, FINAL_PULLS_MAX_MS);
    // A restore from this record waits on `finalPull` while `finalizing`: for the pull running now.
    let pullDone = () => undefined as void;
    const nextPull = () => {
      r.finalPull = new Promise<void>((resolve) => (pullDone = resolve));
    };
    nextPull();
    let claimedAt: number | undefined;
    let lastDigest: string | undefined;
    try {
      while (s.busy && s.running) await s.running;
      s.busy = true;
      for (let first = true; ; first = false) {
        r.finalizing = true;
        let ok: boolean;
        try {
          // Only the first final pull reports a failure: an app that exits at SIGTERM stops answering.
          ok = await this.pullOnce(s.entry, !first);
        } finally {
          r.finalizing = false;
        }
        // A replacement may claim the copy before the kubelet delivered SIGTERM (it starts within a second on
        // the same node): its restore waits until the state stopped changing, briefly, not for the first copy.
        const digest = ok ? newestCopy(r)?.digest : undefined;
        if (r.claimedBy) claimedAt ??= Date.now();
        // Judged once claimed, from the pulls around the claim: an app idle for a moment right after the
        // deletion may still change its state until SIGTERM.
        r.finalSettled =
          claimedAt !== undefined &&
          ((digest !== undefined && digest === lastDigest) || Date.now() - claimedAt >= FINAL_SETTLE_MAX_MS);
        lastDigest = digest;
        const done =
          !ok ||
          this.stopped ||
          Date.now() > deadline ||
          (r.claimedBy !== undefined && r.finalSettled === true);
        // The next pull's promise before this one settles: a restore waiting in between never spins.
        const settled = pullDone;
        if (!done) nextPull();
        settled();
        if (done) break;
        await new Promise((res) => setTimeout(res, FINAL_PULL_GAP_MS));
        if (r.claimedBy !== undefined && r.finalSettled === true) break;
      }
    } catch (err) {
      this.d.log.warn('final checkpoint failed; the previous one will be restored', {
        pod: r.pod,
        error: errorMessage(err),
      });
    } finally {
      s.busy = false;
      r.finalizing = false;
      pullDone();
      r.finalPull = undefined;
      this.unschedule(podUID);
      this.d.onChange(s.entry.policyKey);
    }
  }

  private failed(e: ProtectedPod, r: CheckpointRecord, reason: string, message: string): void {
    this.d.metrics.pulls.inc(r, 'Failed');
    this.d.metrics.pullFailures.inc(r, reason);
    const changed = r.lastFailure?.reason !== reason;
    r.lastFailure = { reason, message, at: Date.now() };
    if (changed) {
      const podName = e.pod.metadata?.name;
      this.d.log.warn('pull failed; last good checkpoint kept', {
        pod: podName,
        namespace: r.namespace,
        reason,
        message,
      });
      const text = `checkpoint of Pod ${podName} failed (${reason}): ${message}; the last good checkpoint is kept`;
      this.d.events.record(policyRef({ ...e, namespace: r.namespace }), 'Warning', reason, text);
      this.d.events.record(podRef(e.pod), 'Warning', reason, text);
    }
    this.d.onChange(e.policyKey);
  }
}
