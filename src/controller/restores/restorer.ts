import type { V1Pod } from '@kubernetes/client-node';
import { READINESS_GATE, type PullStatePolicyRestore } from '../../api/index.js';
import { newestCopy, type CheckpointBook, type CheckpointRecord } from '../checkpoints/checkpoint-book.js';
import { appContainer, appRestartCount, appStartedAt } from '../kube/app-container.js';
import { gateTrue } from './readiness-gate.js';
import {
  claimable,
  pairOrphans,
  restartedSinceSeen,
  seenBaseline,
  type SeenRestarts,
} from './restore-plan.js';
import { protectionStep, type ProtectionFacts } from './protection.js';
import { RestartChecks } from './restart-checks.js';
import {
  failedUnder,
  RestoreRuns,
  type RestoreRunDeps,
  type RestoreTarget,
  type StuckRestore,
} from './restore-runs.js';

export interface RestorerDeps extends RestoreRunDeps {
  book: Pick<CheckpointBook, 'ensure' | 'get'>;
  /** Reconcile a policy soon (a restart was seen outside the API). */
  requeue: (policyKey: string) => void;
  /** Pulls a Pod now (to learn which process answers). */
  pullNow: (podUID: string) => Promise<void>;
  /** The Pod with this UID as the cache holds it, if it exists and is not terminating. */
  livePodByUID: (podUID: string) => V1Pod | undefined;
}

/**
 * Decides, per protected Pod, whether it gets state (protection.ts): from its own checkpoint after a restart in
 * place, from an orphaned checkpoint of its policy, or nothing. Until that decision is carried out the Pod is
 * neither pulled (its empty state must not overwrite the checkpoint) nor let through its readiness gate.
 * Restores are carried out by `RestoreRuns`, restarts checked by `RestartChecks`.
 */
export class Restorer {
  /** Pods whose restore is settled (done, or nothing to do); pulls may run. */
  private settled = new Set<string>();
  private restartsSeen = new Map<string, SeenRestarts>();
  /** Pods whose app answered a pull from a new process (its identity changed) before the API showed it. */
  private instanceRestarts = new Map<string, string>();
  /** Restores stopped for a reason a retry cannot fix, by Pod UID; the gate stays closed meanwhile. */
  private stuck = new Map<string, StuckRestore>();
  private readonly runs: RestoreRuns;
  /** Pods whose restart the API showed, being pulled to learn which process answers. */
  private readonly checks: RestartChecks;

  constructor(private readonly d: RestorerDeps) {
    this.runs = new RestoreRuns({
      ...d,
      onSettled: (uid) => this.settled.add(uid),
      onFailed: (uid, failed) => this.stuck.set(uid, failed),
    });
    this.checks = new RestartChecks(d);
  }

  /** The last restore of each policy, for its status. */
  get lastRestore(): ReadonlyMap<string, PullStatePolicyRestore> {
    return this.runs.lastRestore;
  }

  isSettled(podUID: string): boolean {
    return this.settled.has(podUID);
  }

  /** A deleted policy's last restore is written nowhere any more. */
  forgetPolicy(policyKey: string): void {
    this.runs.lastRestore.delete(policyKey);
  }

  forget(podUID: string): void {
    this.settled.delete(podUID);
    this.restartsSeen.delete(podUID);
    this.instanceRestarts.delete(podUID);
    this.stuck.delete(podUID);
    this.checks.forget(podUID);
  }

  /** A pull was answered by a new process of the app: restore it now, without waiting for the API. */
  restartSeen(policyKey: string, podUID: string, instance: string | undefined): void {
    this.instanceRestarts.set(podUID, instance ?? '');
    this.settled.delete(podUID); // no pull until its restore is done
    this.checks.end(podUID);
    this.d.requeue(policyKey);
  }

  /** A pull of the Pod was stored: a restart under verification was one already restored. */
  stateKept(podUID: string): void {
    if (!this.checks.end(podUID)) return;
    this.settled.add(podUID);
    const pod = this.d.livePodByUID(podUID);
    this.d.log.info('the restarted container runs the process restored already', {
      pod: pod?.metadata?.name,
      gate: pod ? 'opened' : 'Pod gone',
    });
    if (pod)
      void this.d.gate.set(
        pod,
        'True',
        'StateKept',
        'the restarted container runs the process that was restored already',
      );
  }

  /** Whether the Pod may be pulled: its restore is settled, or a pull is how its restart is checked. */
  mayPull(podUID: string): boolean {
    return this.settled.has(podUID) || this.checks.has(podUID);
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
          this.runs.start(t, failed.from, failed.restart);
          break;
        }
        case 'restore-own':
        case 'verify':
          // A check under way goes on (verify keeps it); a new process seen by a pull ends it.
          if (next.step === 'restore-own' && next.seenBy === 'pull') this.checks.end(uid);
          this.settled.delete(uid); // no pull until its restore is done
          if (next.closeGate)
            void this.d.gate.set(
              t.pod,
              'False',
              'RestoreInProgress',
              next.step === 'restore-own' && next.seenBy === 'pull'
                ? 'the app restarted; restoring its last checkpoint'
                : 'the container restarted; restoring its last checkpoint',
            );
          if (next.step === 'restore-own' && next.seenBy === 'pull') {
            this.runs.start(t, own!, { restarts, startedAt: 0, instance: newInstance });
            break;
          }
          this.d.log.info('the API shows a container restart', {
            pod: t.pod.metadata?.name,
            restarts,
            next: next.step === 'verify' ? 'pull to learn which process answers' : 'restore',
            gateKept: !next.closeGate,
          });
          if (next.step === 'verify') this.checks.verify(t);
          else this.runs.start(t, own!, { restarts, startedAt: appStartedAt(t.pod, t.spec) });
          break;
        case 'settle':
          this.settled.add(uid);
          if (next.openGate)
            void this.d.gate.set(
              t.pod,
              'True',
              'StateKept',
              'the Pod has been checkpointed since it started',
            );
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
        this.runs.start(t, orphan);
      } else {
        this.settled.add(uid);
        void this.d.gate.set(
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
      restoring: this.runs.running(uid),
      ...(stuck ? { failed: { changedSince: stuck.under !== failedUnder(t) } } : {}),
      newProcessSeen: newInstance !== undefined,
      restartedInPlace: restarted,
      hasOwnCopy: Boolean(newest),
      restoredBefore: Boolean(own?.restoredFrom),
      namesProcess: own?.instance !== undefined,
      firstLook: seen === undefined,
      gateOpen: gateTrue(t.pod),
      gateOpenedSinceStart: gateOpenedSince(t.pod, startedAt),
      verifying: this.checks.has(uid),
      settled: this.settled.has(uid),
    };
    return { facts, restarts, newInstance };
  }
}

/** The readiness gate is True and was set at or after the app container's start (both whole seconds). */
function gateOpenedSince(pod: V1Pod, start: number): boolean {
  const gate = (pod.status?.conditions ?? []).find((c) => c.type === READINESS_GATE && c.status === 'True');
  const at = gate?.lastTransitionTime ? new Date(gate.lastTransitionTime).getTime() : 0;
  return at > 0 && start > 0 && at >= start;
}
