import type { V1Pod } from '@kubernetes/client-node';
import { REASONS, type PullAssignment, type PullReport } from '../../api/index.js';
import { errorMessage } from '../../runtime/logger.js';
import type { Hold } from './assignment-publisher.js';
import { newestCopy, type CheckpointBook } from './checkpoint-book.js';
import type { ClusterView } from '../kube/cluster-view.js';
import type { HelperClient } from '../kube/helper-client.js';
import { pullAssignment } from './pull-assignment.js';
import { PullOutcomes, type PullMetrics, type PullOutcomeDeps } from './pull-outcomes.js';
import type { ProtectedPod } from './protected-pod.js';
import { finalPulls } from './final-pulls.js';
import { systemClock, type Clock } from '../kube/clock.js';

export { podRef, policyRef } from '../kube/object-refs.js';
export type { ProtectedPod } from './protected-pod.js';

/** A copy pulled within this many intervals means the Pod's helper is pulling it, whatever the API shows. */
const STILL_PULLED_INTERVALS = 3;

interface Schedule {
  entry: ProtectedPod;
  /** A one-off pull this process asked for is running; another one joins it. */
  busy: boolean;
  running?: Promise<void>;
  /** Final pulls of a terminating Pod run one-off, not on the helper's timer. */
  finalizing?: boolean;
}

export interface CheckpointerDeps extends Omit<PullOutcomeDeps, 'entryOf'> {
  book: CheckpointBook;
  /** The node of every Pod by UID, from the informer's cache (for Pods known only by their copies). */
  podNodes?: () => Map<string, string>;
  view: Pick<ClusterView, 'usableHelpers' | 'helpers'>;
  helpers: Pick<HelperClient, 'pull' | 'delete'>;
  metrics: PullMetrics & { protectedPods: { set(pods: number): void } };
  /** False while a Pod must not be pulled (its restore is not done yet). */
  mayPull?: (pod: V1Pod) => boolean;
  /** Ends the one-off and final pulls this process runs (leadership lost, shutdown). */
  signal?: AbortSignal;
}

/**
 * Decides what is checkpointed: which Pods, with which spec, to which nodes. The helper of each Pod's node
 * pulls it on its own timer and streams the copies to the target helpers (the bytes never pass through the
 * controller); the outcomes come back as reports. A failed pull never touches the stored copies; it is
 * recorded on the checkpoint and surfaces as the policy's Degraded condition and a Warning Event.
 */
export class Checkpointer {
  private schedules = new Map<string, Schedule>();
  private readonly outcomes: PullOutcomes;
  private readonly clock: Clock;

  constructor(private readonly d: CheckpointerDeps) {
    this.clock = d.clock ?? systemClock;
    this.outcomes = new PullOutcomes({ ...d, entryOf: (uid) => this.schedules.get(uid)?.entry });
  }

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
        const fresh =
          this.clock.now() - pulledAt < STILL_PULLED_INTERVALS * s.entry.spec.intervalSeconds * 1000;
        if (!fresh && r.lastFailure?.reason !== REASONS.helperUnavailable)
          this.outcomes.failed(
            s.entry,
            r,
            REASONS.helperUnavailable,
            `no Ready helper on node ${node} to pull the Pod`,
          );
        continue;
      }
      const a = pullAssignment(s.entry, r, usable, load, !this.mayPull(s.entry.pod));
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
        this.outcomes.apply(report, false);
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

  private mayPull(pod: V1Pod): boolean {
    return !this.d.mayPull || this.d.mayPull(pod);
  }

  private unschedule(uid: string): void {
    const s = this.schedules.get(uid);
    if (!s) return;
    this.schedules.delete(uid);
    const r = this.d.book.get(uid);
    if (r) r.orphanedSince ??= this.clock.now();
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
        this.outcomes.failed(
          e,
          r,
          REASONS.helperUnavailable,
          `no Ready helper on node ${node} to pull the Pod`,
        );
      return false;
    }
    const a = pullAssignment(e, r, this.d.view.usableHelpers(), this.d.book.loadByNode(), !this.mayPull(pod));
    let report: PullReport;
    try {
      report = await this.d.helpers.pull(puller, a);
    } catch (err) {
      if (!quiet)
        this.outcomes.failed(
          e,
          r,
          REASONS.helperUnavailable,
          `helper on node ${node} did not pull: ${errorMessage(err)}`,
        );
      return false;
    }
    return this.outcomes.apply(report, quiet);
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
    await finalPulls(s, r, {
      pull: (quiet) => this.pullOnce(s.entry, quiet),
      stopped: () => this.stopped,
      log: this.d.log,
      clock: this.clock,
    });
    this.unschedule(podUID);
    this.d.onChange(s.entry.policyKey);
  }
}
