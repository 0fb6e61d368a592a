import type { V1Pod } from '@kubernetes/client-node';
import { READINESS_GATE, REASONS, restoreTimeoutMs, type PullStatePolicyRestore } from '../../api/index.js';
import { errorMessage, type Logger } from '../../runtime/logger.js';
import { backoffDelay } from '../../runtime/backoff.js';
import { WorkQueue, type ReconcileResult } from '../kube/workqueue.js';
import {
  dropCopy,
  dropNewerThan,
  newestCopy,
  type CheckpointBook,
  type CheckpointRecord,
} from '../checkpoints/checkpoint-book.js';
import { podRef, policyRef, type ProtectedPod } from '../checkpoints/checkpointer.js';
import { appContainer, appRestartCount, appStartedAt } from '../kube/app-container.js';
import type { ClusterView } from '../kube/cluster-view.js';
import type { EventRecorder } from '../kube/events.js';
import type { HelperClient } from '../kube/helper-client.js';
import type { ControllerMetrics } from '../metrics.js';
import { gateTrue, type GateWriter } from './readiness-gate.js';
import {
  claimable,
  pairOrphans,
  restartedSinceSeen,
  restorableCopies,
  seenBaseline,
  type SeenRestarts,
  type RestartFacts,
} from './restore-plan.js';
import { hostNetworkMark } from '../policies/host-network.js';
import { protectionStep, type ProtectionFacts } from './protection.js';

/**
 * A replacement's IP is in the API before its app listens (on real nodes a Node.js app needs ~0.5 s more):
 * retry quickly and keep retrying at a short, fixed ceiling, so the restore lands within ~0.25 s of the app
 * listening instead of after a doubled wait. A refused connection costs the helper next to nothing.
 */
const RETRY = { baseMs: 50, maxMs: 250 };
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
type RestoreTarget = ProtectedPod;

export interface RestorerDeps {
  /** Shared with the gate keeper, so all gate writes to a Pod keep their order. */
  gate: GateWriter;
  book: CheckpointBook;
  view: ClusterView;
  helpers: HelperClient;
  events: EventRecorder;
  metrics: ControllerMetrics;
  log: Logger;
  onChange: (policyKey: string) => void;
  /** The Pod as the cache holds it now, if it still exists with this UID and is not terminating. */
  livePod: (namespace: string, name: string, uid: string) => V1Pod | undefined;
  /** When the fault behind a replacement was detected, for the detection-to-ready histogram. */
  faultDetectedAt?: (policyKey: string) => number | undefined;
  /** Reconcile a policy soon (a restart was seen outside the API). */
  requeue: (policyKey: string) => void;
  /** Pulls a Pod now (to learn which process answers). */
  pullNow: (podUID: string) => Promise<void>;
  /** Reads the generations the helpers hold of a record that the book may not know yet. */
  refresh?: (r: CheckpointRecord) => Promise<void>;
  /** The Pod with this UID as the cache holds it, if it exists and is not terminating. */
  livePodByUID: (podUID: string) => V1Pod | undefined;
  /** Ends every restore and restart check (leadership lost, shutdown). */
  signal?: AbortSignal;
  /** Wall-clock milliseconds, for durations (tests pass a fake one). */
  now?: () => number;
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
interface StuckRestore {
  from: CheckpointRecord;
  restart?: RestartFacts;
  under: string;
}

/** What a permanent restore failure depends on: the policy's spec and the Pod's identity and generation. */
function failedUnder(t: RestoreTarget): string {
  const m = t.pod.metadata;
  return JSON.stringify([t.spec, m?.uid, m?.generation, t.pod.status?.podIP]);
}

/** A restart being checked by pulls: which process answers. */
interface RestartCheck {
  t: RestoreTarget;
  attempts: number;
}

/**
 * Decides, once per Pod, whether a new Pod gets state: from its own checkpoint after a restart in place,
 * from an orphaned checkpoint of its policy, or nothing. Until that decision is carried out the Pod is
 * neither pulled (its empty state must not overwrite the checkpoint) nor let through its readiness gate.
 */
export class Restorer {
  /** Pods whose restore is settled (done, or nothing to do); pulls may run. */
  private settled = new Set<string>();
  /** Restores in progress, by Pod UID; each attempt is one run of the `restores` queue. */
  private jobs = new Map<string, RestoreJob>();
  private restartsSeen = new Map<string, SeenRestarts>();
  /** Pods whose app answered a pull from a new process (its identity changed) before the API showed it. */
  private instanceRestarts = new Map<string, string>();
  /** Pods whose restart the API showed, being pulled (one run of `checks` each) to learn which process answers. */
  private verifying = new Map<string, RestartCheck>();
  /** Restores stopped for a reason a retry cannot fix, by Pod UID; the gate stays closed meanwhile. */
  private stuck = new Map<string, StuckRestore>();
  private readonly restores: WorkQueue;
  private readonly checks: WorkQueue;
  readonly lastRestore = new Map<string, PullStatePolicyRestore>();
  private readonly gate: GateWriter;
  private readonly now: () => number;

  constructor(private readonly d: RestorerDeps) {
    this.gate = d.gate;
    this.now = d.now ?? Date.now;
    const onError = (what: string) => (key: string, err: unknown, retryInMs: number) =>
      d.log.error(`${what} crashed, will retry`, { podUID: key, error: errorMessage(err), retryInMs });
    this.restores = new WorkQueue((uid) => this.restoreAttempt(uid), {
      concurrency: RESTORE_CONCURRENCY,
      signal: d.signal,
      backoff: RETRY,
      onError: onError('restore'),
    });
    this.checks = new WorkQueue((uid) => this.checkRestart(uid), {
      concurrency: RESTORE_CONCURRENCY,
      signal: d.signal,
      backoff: RETRY,
      onError: onError('restart check'),
    });
    d.signal?.addEventListener('abort', () => this.verifying.clear(), { once: true });
  }

  isSettled(podUID: string): boolean {
    return this.settled.has(podUID);
  }

  /** A deleted policy's last restore is written nowhere any more. */
  forgetPolicy(policyKey: string): void {
    this.lastRestore.delete(policyKey);
  }

  forget(podUID: string): void {
    this.settled.delete(podUID);
    this.restartsSeen.delete(podUID);
    this.instanceRestarts.delete(podUID);
    this.verifying.delete(podUID);
    this.stuck.delete(podUID);
    this.checks.forget(podUID);
  }

  /** A pull was answered by a new process of the app: restore it now, without waiting for the API. */
  restartSeen(policyKey: string, podUID: string, instance: string | undefined): void {
    this.instanceRestarts.set(podUID, instance ?? '');
    this.settled.delete(podUID); // no pull until its restore is done
    this.verifying.delete(podUID);
    this.d.requeue(policyKey);
  }

  /** A pull of the Pod was stored: a restart under verification was one already restored. */
  stateKept(podUID: string): void {
    if (!this.verifying.delete(podUID)) return;
    this.settled.add(podUID);
    const pod = this.d.livePodByUID(podUID);
    this.d.log.info('the restarted container runs the process restored already', {
      pod: pod?.metadata?.name,
      gate: pod ? 'opened' : 'Pod gone',
    });
    if (pod)
      void this.setGate(
        pod,
        'True',
        'StateKept',
        'the restarted container runs the process that was restored already',
      );
  }

  /**
   * The API shows a restart of an app that names its process: pull it until it answers. A new process is
   * restored from the copies (the pull is refused as a restart); the process restored already (a restart
   * seen first by a pull, or by a previous leader) is left alone. Either way it is restored exactly once.
   */
  private verify(t: RestoreTarget): void {
    const uid = t.pod.metadata!.uid!;
    if (this.verifying.has(uid)) return;
    this.verifying.set(uid, { t, attempts: 0 });
    this.checks.add(uid);
  }

  /** One pull of a restart under check; again after a short back-off until the pull settles it. */
  private async checkRestart(uid: string): Promise<ReconcileResult> {
    const check = this.verifying.get(uid);
    if (!check) return;
    const pod = check.t.pod;
    if (!this.d.livePod(pod.metadata!.namespace!, pod.metadata!.name!, uid)) {
      this.verifying.delete(uid);
      return;
    }
    await this.d.pullNow(uid);
    if (this.verifying.get(uid) !== check) return;
    check.attempts++;
    return { requeueAfterMs: backoffDelay(check.attempts, RETRY) };
  }

  /** Whether the Pod may be pulled: its restore is settled, or a pull is how its restart is checked. */
  mayPull(podUID: string): boolean {
    return this.settled.has(podUID) || this.verifying.has(podUID);
  }

  /** Considers the Pods a policy protects now; orphans are the policy's records without a live Pod. */
  consider(targets: RestoreTarget[], orphans: CheckpointRecord[]): void {
    const fresh: RestoreTarget[] = [];
    for (const t of targets) {
      const uid = t.pod.metadata!.uid!;
      const own = this.d.book.get(uid);
      const { facts, restarts, newInstance } = this.observe(t, own);
      const next = protectionStep(facts);
      switch (next.step) {
        case 'wait':
          break;
        case 'retry-failed': {
          const failed = this.stuck.get(uid)!;
          this.stuck.delete(uid);
          this.d.log.info('the policy or Pod changed since its restore failed; restoring again', {
            pod: t.pod.metadata?.name,
          });
          this.start(t, failed.from, failed.restart);
          break;
        }
        case 'restore-own':
        case 'verify':
          // A check under way goes on (verify keeps it); a new process seen by a pull ends it.
          if (next.step === 'restore-own' && next.seenBy === 'pull') this.verifying.delete(uid);
          this.settled.delete(uid); // no pull until its restore is done
          if (next.closeGate)
            void this.setGate(
              t.pod,
              'False',
              'RestoreInProgress',
              next.step === 'restore-own' && next.seenBy === 'pull'
                ? 'the app restarted; restoring its last checkpoint'
                : 'the container restarted; restoring its last checkpoint',
            );
          if (next.step === 'restore-own' && next.seenBy === 'pull') {
            this.start(t, own!, { restarts, startedAt: 0, instance: newInstance });
            break;
          }
          this.d.log.info('the API shows a container restart', {
            pod: t.pod.metadata?.name,
            restarts,
            next: next.step === 'verify' ? 'pull to learn which process answers' : 'restore',
            gateKept: !next.closeGate,
          });
          if (next.step === 'verify') this.verify(t);
          else this.start(t, own!, { restarts, startedAt: appStartedAt(t.pod, t.spec) });
          break;
        case 'settle':
          this.settled.add(uid);
          if (next.openGate)
            void this.setGate(t.pod, 'True', 'StateKept', 'the Pod has been checkpointed since it started');
          break;
        case 'restore-orphan':
          fresh.push(t);
          break;
      }
    }
    if (fresh.length === 0) return;
    // A policy deleted and created again under the same name (within the orphan retention) takes its
    // predecessor's copies: that is how a user recovers from deleting a policy by mistake.
    const free = orphans.filter((o) => claimable(o, o.claimedBy ? this.d.book.get(o.claimedBy) : undefined));
    const pairs = pairOrphans(
      free,
      fresh.map((t) => ({
        uid: t.pod.metadata!.uid!,
        name: t.pod.metadata!.name!,
        createdAt: Date.parse(String(t.pod.metadata?.creationTimestamp ?? 0)) || 0,
        statefulSet: (t.pod.metadata?.ownerReferences ?? []).some((o) => o.kind === 'StatefulSet'),
        ...(t.workload !== undefined ? { workload: t.workload } : {}),
      })),
    );
    for (const t of fresh) {
      const uid = t.pod.metadata!.uid!;
      const orphan = pairs.get(uid);
      if (orphan) {
        orphan.claimedBy = uid;
        this.start(t, orphan);
      } else {
        this.settled.add(uid);
        void this.setGate(
          t.pod,
          'True',
          'NothingToRestore',
          'no checkpoint to restore: the Pod starts fresh',
        );
      }
    }
  }

  /**
   * What is observed of a protected Pod now, for `protectionStep`; records its restart count as seen, and
   * takes the new process a pull met, if any.
   */
  private observe(t: RestoreTarget, own: CheckpointRecord | undefined) {
    const uid = t.pod.metadata!.uid!;
    const restarts = appRestartCount(t.pod, t.spec);
    const newest = own && newestCopy(own);
    const container = appContainer(t.pod, t.spec).name;
    const prev = this.restartsSeen.get(uid);
    const seen = seenBaseline(prev, container, restarts);
    if (prev && prev.container !== container)
      this.d.log.info('the app container changed: its restarts count from here', {
        pod: t.pod.metadata?.name,
        from: prev.container,
        to: container,
        restarts,
      });
    const newInstance = this.instanceRestarts.get(uid);
    this.instanceRestarts.delete(uid);
    const startedAt = appStartedAt(t.pod, t.spec);
    const restarted = restartedSinceSeen({ restarts, seen, newest, startedAt });
    this.restartsSeen.set(uid, { container, restarts });
    if (seen === undefined)
      this.d.log.debug('first look at a protected Pod', {
        pod: t.pod.metadata?.name,
        restarts,
        copyRestarts: newest?.restartCount,
        copySequence: newest?.sequence,
        restarted,
        gate: gateTrue(t.pod),
      });
    const stuck = this.stuck.get(uid);
    const facts: ProtectionFacts = {
      restoring: this.jobs.has(uid),
      ...(stuck ? { failed: { changedSince: stuck.under !== failedUnder(t) } } : {}),
      newProcessSeen: newInstance !== undefined,
      restartedInPlace: restarted,
      hasOwnCopy: Boolean(newest),
      restoredBefore: Boolean(own?.restoredFrom),
      namesProcess: own?.instance !== undefined,
      firstLook: seen === undefined,
      gateOpen: gateTrue(t.pod),
      gateOpenedSinceStart: gateOpenedSince(t.pod, startedAt),
      verifying: this.verifying.has(uid),
      settled: this.settled.has(uid),
    };
    return { facts, restarts, newInstance };
  }

  /** Restores `from` into `t`: its own checkpoint after a restart in place (`restart` given), or an orphan's. */
  private start(t: RestoreTarget, from: CheckpointRecord, restart?: RestartFacts): void {
    const uid = t.pod.metadata!.uid!;
    this.jobs.set(uid, { t, from, restart, attempts: 0, rejected: 0, started: this.now(), refreshed: false });
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
      this.settled.add(uid);
      const message =
        'every stored copy was pulled after the container may have restarted; the Pod keeps its own state';
      this.report(t, {
        pod: name,
        fromPod: from.pod,
        node: '',
        sizeBytes: 0,
        durationMilliseconds: this.now() - started,
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
          const durationMilliseconds = this.now() - started;
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
          this.settled.add(uid);
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
          if (detected) this.d.metrics.failoverSeconds.observe((this.now() - detected) / 1000);
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
            this.settled.add(uid);
            const message = `the app refused the state ${job.rejected} times (${answer.message}); the Pod starts without it`;
            this.report(t, {
              pod: name,
              fromPod: from.pod,
              node: copy.node,
              sizeBytes: copy.sizeBytes,
              durationMilliseconds: this.now() - started,
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
        durationMilliseconds: this.now() - started,
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
    this.stuck.set(t.pod.metadata!.uid!, { from, ...(restart ? { restart } : {}), under: failedUnder(t) });
    const message = `restore of Pod ${from.pod}'s state stopped: ${why}. Fix the policy (port, restorePath, timeoutSeconds) or the Pod; the restore is tried again when either changes`;
    this.report(t, {
      pod: name,
      fromPod: from.pod,
      node,
      sizeBytes,
      durationMilliseconds: this.now() - started,
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
    const restore: PullStatePolicyRestore = { ...r, timestamp: new Date().toISOString() };
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
    return this.gate.set(pod, status, reason, message);
  }
}

/** The readiness gate is True and was set at or after the app container's start (both whole seconds). */
function gateOpenedSince(pod: V1Pod, start: number): boolean {
  const gate = (pod.status?.conditions ?? []).find((c) => c.type === READINESS_GATE && c.status === 'True');
  const at = gate?.lastTransitionTime ? new Date(gate.lastTransitionTime).getTime() : 0;
  return at > 0 && start > 0 && at >= start;
}
