import type { V1Pod } from '@kubernetes/client-node';
import { REASONS, restoreTimeoutMs, type PullStatePolicyRestore } from '../../api/index.js';
import { errorMessage, type Logger } from '../../runtime/logger.js';
import { backoffDelay } from '../../runtime/backoff.js';
import { WorkQueue, type ReconcileResult } from '../kube/workqueue.js';
import {
  dropCopy,
  dropNewerThan,
  type CheckpointBook,
  type CheckpointRecord,
} from '../checkpoints/checkpoint-book.js';
import type { ProtectedPod } from '../checkpoints/protected-pod.js';
import { podRef, policyRef } from '../kube/object-refs.js';
import { appRestartCount } from '../kube/app-container.js';
import type { ClusterView } from '../kube/cluster-view.js';
import type { EventRecorder } from '../kube/events.js';
import type { HelperClient } from '../kube/helper-client.js';
import type { GateWriter } from './readiness-gate.js';
import { restorableCopies, type RestartFacts } from './restore-plan.js';
import { hostNetworkMark } from '../policies/host-network.js';
import { systemClock, type Clock } from '../kube/clock.js';

/**
 * A replacement's IP is in the API before its app listens (on real nodes a Node.js app needs ~0.5 s more):
 * retry quickly and keep retrying at a short, fixed ceiling, so the restore lands within ~0.25 s of the app
 * listening instead of after a doubled wait. A refused connection costs the helper next to nothing.
 */
export const RETRY = { baseMs: 50, maxMs: 250 };
/** Retry beat of a restore after its first 40 attempts (~10 s). */
const SLOW_RETRY_MS = 2000;
/** Refusals (4xx) of a state by the app after which its restore is given up. */
const MAX_REJECTIONS = 5;
/**
 * Restores running at once. Each mostly waits for an app's answer (at least MIN_RESTORE_ANSWER_MS): a failover of
 * many Pods must not queue behind a few slow apps.
 */
const RESTORE_CONCURRENCY = 256;

/** A Pod a policy protects, as the checkpointer knows it. */
export type RestoreTarget = ProtectedPod;

/** The metrics a restore records. */
export interface RestoreMetrics {
  restores: { inc(labels: { namespace: string; policy: string }, result: string): void };
  failoverSeconds: { observe(seconds: number): void };
}

/** What carrying out restores needs. */
export interface RestoreRunDeps {
  /** Shared with the gate keeper, so all gate writes to a Pod keep their order. */
  gate: Pick<GateWriter, 'set'>;
  book: Pick<CheckpointBook, 'ensure'>;
  view: Pick<ClusterView, 'helpers' | 'usableHelpers'>;
  helpers: Pick<HelperClient, 'restore' | 'delete'>;
  events: Pick<EventRecorder, 'record'>;
  metrics: RestoreMetrics;
  log: Logger;
  onChange: (policyKey: string) => void;
  /** The Pod as the cache holds it now, if it still exists with this UID and is not terminating. */
  livePod: (namespace: string, name: string, uid: string) => V1Pod | undefined;
  /** When the fault behind a replacement was detected, for the detection-to-ready histogram. */
  faultDetectedAt?: (policyKey: string) => number | undefined;
  /** Reads the generations the helpers hold of a record that the book may not know yet. */
  refresh?: (r: CheckpointRecord) => Promise<void>;
  /** Ends every restore (leadership lost, shutdown). */
  signal?: AbortSignal;
  clock?: Clock;
}

/** A restore in progress: what goes where, and how its attempts went so far. */
interface RestoreJob {
  t: RestoreTarget;
  from: CheckpointRecord;
  restart?: RestartFacts;
  attempts: number;
  rejected: number;
  started: number;
  refreshed: boolean;
}

/**
 * A restore that failed for a reason a retry cannot fix: what it was, so it can start again, and the policy
 * and Pod it failed under, so it starts again only once one of them changed.
 */
export interface StuckRestore {
  from: CheckpointRecord;
  restart?: RestartFacts;
  under: string;
}

/** What a permanent restore failure depends on: the policy's spec and the Pod's identity and generation. */
export function failedUnder(t: RestoreTarget): string {
  const m = t.pod.metadata;
  return JSON.stringify([t.spec, m?.uid, m?.generation, t.pod.status?.podIP]);
}

/**
 * Carries out restores, one queue run per attempt until it succeeds or cannot: chooses the copy, has the helper
 * that holds it push it into the app, records the result (status, Events, metrics) and opens the gate. The
 * restorer decides what to restore (protection.ts); this tells it when a Pod's restore settled or failed for
 * good.
 */
export class RestoreRuns {
  /** Restores in progress, by Pod UID; each attempt is one run of the queue. */
  private jobs = new Map<string, RestoreJob>();
  private readonly restores: WorkQueue;
  readonly lastRestore = new Map<string, PullStatePolicyRestore>();
  private readonly clock: Clock;

  constructor(
    private readonly d: RestoreRunDeps & {
      /** The Pod's restore is settled (done, or nothing more to do): it may be pulled. */
      onSettled: (podUID: string) => void;
      /** The restore cannot succeed as asked: it waits for the policy or the Pod to change. */
      onFailed: (podUID: string, failed: StuckRestore) => void;
    },
  ) {
    this.clock = d.clock ?? systemClock;
    this.restores = new WorkQueue((uid) => this.restoreAttempt(uid), {
      concurrency: RESTORE_CONCURRENCY,
      signal: d.signal,
      clock: d.clock,
      backoff: RETRY,
      onError: (key, err, retryInMs) =>
        d.log.error('restore crashed, will retry', { podUID: key, error: errorMessage(err), retryInMs }),
    });
  }

  /** A restore of the Pod is in progress. */
  running(podUID: string): boolean {
    return this.jobs.has(podUID);
  }

  /** Restores `from` into `t`: its own checkpoint after a restart in place (`restart` given), or an orphan's. */
  start(t: RestoreTarget, from: CheckpointRecord, restart?: RestartFacts): void {
    const uid = t.pod.metadata!.uid!;
    this.jobs.set(uid, {
      t,
      from,
      restart,
      attempts: 0,
      rejected: 0,
      started: this.clock.now(),
      refreshed: false,
    });
    this.restores.add(uid);
  }

  /** One attempt of a restore: done (the job ends), or again after a delay. */
  private async restoreAttempt(uid: string): Promise<ReconcileResult> {
    const job = this.jobs.get(uid);
    if (!job) return;
    const retryInMs = await this.attempt(job);
    if (retryInMs !== undefined) return { requeueAfterMs: retryInMs };
    if (this.jobs.get(uid) === job) this.jobs.delete(uid);
  }

  /** Returns the delay before the next attempt, or undefined when the restore is over (either way). */
  private async attempt(job: RestoreJob): Promise<number | undefined> {
    const { t, from, restart, started } = job;
    const pod = t.pod;
    const name = pod.metadata!.name!;
    const uid = pod.metadata!.uid!;
    const why = restart ? 'restart' : 'orphan';
    // The process the state goes into: a repeated request for it (a retry, a new leader) is not pushed twice.
    const target = {
      podUID: uid,
      restartCount: restart?.restarts ?? appRestartCount(pod, t.spec),
      ...(restart?.instance ? { instance: restart.instance } : {}),
    };
    if (!job.refreshed) {
      // The helpers report pulls in batches, and a report can be lost (a lost node, a leader change, a poll
      // that failed): ask the helpers which generations they hold before choosing one.
      await this.d.refresh?.(from).catch(() => undefined);
      job.refreshed = true;
    }
    // The final checkpoint of a terminating Pod is on its way: restore that one, once the state stopped
    // changing (the app got SIGTERM) or briefly after the claim (see Checkpointer.finalize).
    while (from.finalPull && (from.finalizing || !from.finalSettled)) await from.finalPull;
    const attempt = ++job.attempts;
    const live = this.d.livePod(pod.metadata!.namespace!, name, uid);
    if (!live) {
      from.claimedBy = undefined;
      return; // the new Pod went away itself; the orphan is free again
    }
    const candidates = restorableCopies(from, restart);
    const helpers = this.d.view.usableHelpers();
    const copy = candidates.find((c) => helpers.has(c.node));
    let failure: string;
    if (candidates.length === 0 && from.generations.length > 0) {
      // Every copy may hold the new process's empty state: restoring one would pass it off as the old state.
      this.d.onSettled(uid);
      const message =
        'every stored copy was pulled after the container may have restarted; the Pod keeps its own state';
      this.report(t, {
        pod: name,
        fromPod: from.pod,
        node: '',
        sizeBytes: 0,
        durationMilliseconds: this.clock.now() - started,
        result: 'Failed',
        message,
      });
      await this.setGate(live, 'True', 'NoCopyBeforeRestart', message);
      return;
    }
    if (!copy) failure = 'no Ready helper holds a copy';
    else {
      try {
        const answer = await this.d.helpers.restore(helpers.get(copy.node)!, from.namespace, from.podUID, {
          podIP: live.status?.podIP ?? '',
          ...hostNetworkMark(live, t.spec),
          port: t.spec.port,
          path: t.spec.restorePath,
          timeoutMs: restoreTimeoutMs(t.spec),
          sequence: copy.sequence,
          target,
        });
        if (answer.result === 'Succeeded') {
          const durationMilliseconds = this.clock.now() - started;
          const into = restart
            ? from
            : this.d.book.ensure({ namespace: from.namespace, policy: t.policy, pod: name, podUID: uid });
          if (!restart) {
            into.restoredFrom = from.podUID;
            from.sealed = Math.max(from.sealed ?? 0, copy.sequence);
          }
          // The restored process's identity (undefined: the next pull's is taken as it).
          into.instance = answer.instance;
          const later = restart ? this.dropLaterCopies(from, copy.sequence) : 0;
          this.d.onSettled(uid);
          const again = answer.alreadyRestored ? ' (done before this request: not pushed again)' : '';
          const dropped = later
            ? `; ${later} later copies, pulled after the restart may have happened, dropped`
            : '';
          const message = `restored ${copy.sizeBytes} bytes (sequence ${copy.sequence}) from ${why === 'restart' ? 'its own checkpoint after a restart' : `Pod ${from.pod}`} via node ${copy.node}${again}${dropped}`;
          this.report(t, {
            pod: name,
            fromPod: from.pod,
            node: copy.node,
            sizeBytes: copy.sizeBytes,
            durationMilliseconds,
            result: 'Succeeded',
            message,
          });
          await this.setGate(live, 'True', 'Restored', message);
          const detected = this.d.faultDetectedAt?.(t.policyKey);
          if (detected) this.d.metrics.failoverSeconds.observe((this.clock.now() - detected) / 1000);
          return;
        }
        if (answer.reason === 'Refused') {
          await this.giveUp(job, live, copy.node, copy.sizeBytes, answer.message);
          return;
        }
        failure = `${answer.reason}: ${answer.message}`;
        if (answer.reason === 'Rejected' && answer.status !== undefined && answer.status < 500) {
          job.rejected++;
          if (job.rejected >= MAX_REJECTIONS) {
            // The app refuses this state (no restore endpoint, or it cannot take it): retrying will not
            // change its mind, and the Pod would never be pulled nor Ready. It starts without the state;
            // the copies stay until they expire.
            this.d.onSettled(uid);
            const message = `the app refused the state ${job.rejected} times (${answer.message}); the Pod starts without it`;
            this.report(t, {
              pod: name,
              fromPod: from.pod,
              node: copy.node,
              sizeBytes: copy.sizeBytes,
              durationMilliseconds: this.clock.now() - started,
              result: 'Failed',
              message,
            });
            await this.setGate(live, 'True', 'RestoreRejected', message);
            return;
          }
        }
        if (answer.reason === 'NotStored') {
          // The helper no longer holds that generation (it keeps a few): forget it, use the next.
          dropCopy(from, copy);
        }
      } catch (err) {
        failure = errorMessage(err);
      }
    }
    if (attempt === 1 || attempt % 20 === 0) {
      this.d.log.info('restore not done yet, retrying', { pod: name, attempt, reason: failure });
    }
    if (attempt === 30) {
      this.report(t, {
        pod: name,
        fromPod: from.pod,
        node: copy?.node ?? '',
        sizeBytes: copy?.sizeBytes ?? 0,
        durationMilliseconds: this.clock.now() - started,
        result: 'Failed',
        message: `still retrying: ${failure}`,
      });
    }
    // Fast while an app may be about to listen; after that, an app that takes minutes gets a slower beat.
    return attempt <= 40 ? backoffDelay(attempt, RETRY) : SLOW_RETRY_MS;
  }

  /**
   * Ends a restore that cannot succeed as asked. The Pod is not settled: it is neither pulled (its empty
   * state must not replace the checkpoint) nor let through its gate, whose message says what to fix. The
   * next attempt comes when the policy or the Pod changes (see `consider`), not on a timer.
   */
  private async giveUp(job: RestoreJob, live: V1Pod, node: string, sizeBytes: number, why: string) {
    const { t, from, restart, started } = job;
    const name = t.pod.metadata!.name!;
    this.d.onFailed(t.pod.metadata!.uid!, { from, ...(restart ? { restart } : {}), under: failedUnder(t) });
    const message = `restore of Pod ${from.pod}'s state stopped: ${why}. Fix the policy (port, restorePath, timeoutSeconds) or the Pod; the restore is tried again when either changes`;
    this.report(t, {
      pod: name,
      fromPod: from.pod,
      node,
      sizeBytes,
      durationMilliseconds: this.clock.now() - started,
      result: 'Failed',
      message,
    });
    await this.setGate(live, 'False', REASONS.restoreFailed, message);
  }

  /**
   * Copies pulled after the restored one may be of the new process (its empty state): they must never be
   * restored, by this process or by a later leader reading the helpers' inventories.
   */
  private dropLaterCopies(r: CheckpointRecord, sequence: number): number {
    const endpoints = this.d.view.helpers();
    const later = new Set(r.generations.filter((c) => c.sequence > sequence).map((c) => c.sequence)).size;
    for (const node of dropNewerThan(r, sequence)) {
      const ep = endpoints.get(node);
      if (ep)
        void this.d.helpers.delete(ep, r.namespace, r.podUID, sequence).catch((err: unknown) =>
          this.d.log.warn('could not drop copies pulled after a restart', {
            node,
            error: errorMessage(err),
          }),
        );
    }
    return later;
  }

  private report(t: RestoreTarget, r: Omit<PullStatePolicyRestore, 'timestamp'>): void {
    const restore: PullStatePolicyRestore = { ...r, timestamp: new Date(this.clock.now()).toISOString() };
    this.lastRestore.set(t.policyKey, restore);
    const ns = t.pod.metadata!.namespace!;
    this.d.metrics.restores.inc({ namespace: ns, policy: t.policy }, r.result ?? 'Failed');
    const type = r.result === 'Succeeded' ? 'Normal' : 'Warning';
    const reason = r.result === 'Succeeded' ? 'Restored' : REASONS.restoreFailed;
    const text = `Pod ${r.pod}: ${r.message ?? r.result} (${r.durationMilliseconds} ms)`;
    this.d.log.info('restore', { policy: t.policyKey, ...restore });
    this.d.events.record(policyRef({ ...t, namespace: ns }), type, reason, text);
    this.d.events.record(podRef(t.pod), type, reason, text);
    this.d.onChange(t.policyKey);
  }

  private setGate(pod: V1Pod, status: 'True' | 'False', reason: string, message: string): Promise<void> {
    return this.d.gate.set(pod, status, reason, message);
  }
}
