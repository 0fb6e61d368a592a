import { REASONS, type PullReport } from '../../api/index.js';
import type { Logger } from '../../runtime/logger.js';
import { appRestartCount } from '../kube/app-container.js';
import type { ClusterView } from '../kube/cluster-view.js';
import type { EventRecorder } from '../kube/events.js';
import type { HelperClient } from '../kube/helper-client.js';
import { podRef, policyRef } from '../kube/object-refs.js';
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
import type { ProtectedPod } from './protected-pod.js';
import { failureReason, noTargetMessage } from './pull-assignment.js';
import { systemClock, type Clock } from '../kube/clock.js';

type PolicyLabels = { namespace: string; policy: string };

/** The metrics pulls record. */
export interface PullMetrics {
  pulls: { inc(labels: PolicyLabels, result: string): void };
  pullFailures: { inc(labels: PolicyLabels, reason: string): void };
  pullSeconds: { observe(seconds: number): void };
  pullBytes: { observe(bytes: number): void };
}

export interface PullOutcomeDeps {
  book: Pick<CheckpointBook, 'get' | 'delete'>;
  view: Pick<ClusterView, 'helpers'>;
  helpers: Pick<HelperClient, 'delete'>;
  metrics: PullMetrics;
  events: Pick<EventRecorder, 'record'>;
  log: Logger;
  /** The policy entry of a Pod protected now. */
  entryOf: (podUID: string) => ProtectedPod | undefined;
  /** A policy's checkpoints changed (status to write). */
  onChange: (policyKey: string) => void;
  /** What helpers pull changed: publish the assignments. */
  onAssignmentsChange?: () => void;
  /** A pull was answered by a new process of the app (its identity changed): it restarted, restore it now. */
  onRestart?: (entry: ProtectedPod, instance: string | undefined) => void;
  /** A pull of the Pod was stored. */
  onStored?: (podUID: string) => void;
  clock?: Clock;
}

/**
 * Records what pulls did, in the checkpoint book: the copies stored (a good checkpoint is only ever replaced by
 * a newer good one), a restart met by a pull, a failure (kept on the record, surfaced as the policy's Degraded
 * condition and a Warning Event), copies that must go (pulled after the Pod was given up, of a restored orphan,
 * on nodes that are no longer targets).
 */
export class PullOutcomes {
  constructor(private readonly d: PullOutcomeDeps) {}

  /** Records a pull's outcome; true if copies were stored. */
  apply(report: PullReport, quiet: boolean): boolean {
    const r = this.d.book.get(report.podUID);
    if (!r) return false;
    const e = this.d.entryOf(report.podUID);
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
      const reason = failureReason(report);
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
    if (!orphan || this.d.entryOf(orphanUID)) return;
    const endpoints = this.d.view.helpers();
    for (const node of orphan.copies.keys()) {
      const ep = endpoints.get(node);
      if (ep) void this.d.helpers.delete(ep, orphan.namespace, orphanUID).catch(() => undefined);
    }
    this.d.book.delete(orphanUID);
  }

  /** Records a failed pull: kept on the checkpoint, a Warning Event when the reason changes. */
  failed(e: ProtectedPod, r: CheckpointRecord, reason: string, message: string): void {
    this.d.metrics.pulls.inc(r, 'Failed');
    this.d.metrics.pullFailures.inc(r, reason);
    const changed = r.lastFailure?.reason !== reason;
    r.lastFailure = { reason, message, at: (this.d.clock ?? systemClock).now() };
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
