import type { CheckpointRecord, Copy } from '../checkpoints/checkpoint-book.js';
import { pullTime } from '../../api/index.js';
import { newestCopy } from '../checkpoints/checkpoint-book.js';

export interface NewPod {
  uid: string;
  name: string;
  createdAt: number;
  /** StatefulSet Pods keep their name across replacements, so name is the strongest match. */
  statefulSet: boolean;
  /** Its workload (`workloadOf`): only an orphan of the same workload may go into it. */
  workload?: string;
}

/** When an orphan's state was taken: a final pull still running is the newest of all. */
function stateTime(o: CheckpointRecord): number {
  if (o.finalizing) return Number.POSITIVE_INFINITY;
  const newest = newestCopy(o);
  return newest ? Date.parse(newest.storedAt) || 0 : 0;
}

/**
 * Whether an orphan may go into a new Pod (pure): it is unclaimed, its claimer is forgotten, or its claimer is
 * gone again without a checkpoint of its own (restored, then lost before its first pull): the state of that
 * line of Pods then lives on only in this orphan, and the next replacement must get it rather than nothing.
 */
export function claimable(orphan: CheckpointRecord, claimer: CheckpointRecord | undefined): boolean {
  if (!orphan.claimedBy || !claimer) return true;
  return claimer.orphanedSince !== undefined && !claimer.finalizing && !newestCopy(claimer);
}

/**
 * Pairs orphaned checkpoints with new Pods that have no state (pure), within a workload: one policy may
 * select the Pods of several, and one app's state pushed into another's Pod is the worst a restore can do. An
 * orphan or Pod without a workload pairs with nothing. A StatefulSet Pod takes the orphan with its own name;
 * the rest go newest state to newest Pod. The time a copy was stored is used, not when this process saw the
 * Pod go: after a takeover every orphan looks equally old, and an orphan already restored into a Pod that has
 * since failed too must never beat that Pod's own, newer state. An orphan is used at most once.
 */
export function pairOrphans(
  orphans: readonly CheckpointRecord[],
  pods: readonly NewPod[],
): Map<string, CheckpointRecord> {
  const pairs = new Map<string, CheckpointRecord>();
  const free = orphans
    .filter((o) => newestCopy(o) || o.finalizing)
    .sort((a, b) => stateTime(b) - stateTime(a) || a.pod.localeCompare(b.pod));
  const take = (o: CheckpointRecord) => free.splice(free.indexOf(o), 1);
  for (const pod of pods) {
    if (!pod.statefulSet || !pod.workload) continue;
    const same = free.find((o) => o.pod === pod.name && o.workload === pod.workload);
    if (same) {
      pairs.set(pod.uid, same);
      take(same);
    }
  }
  const rest = pods
    .filter((p) => !pairs.has(p.uid))
    .sort((a, b) => b.createdAt - a.createdAt || a.name.localeCompare(b.name));
  for (const pod of rest) {
    const o = pod.workload ? free.find((f) => f.workload === pod.workload) : undefined;
    if (!o) continue;
    pairs.set(pod.uid, o);
    take(o);
  }
  return pairs;
}

/**
 * Whether a Pod's containers restarted (lost their memory) since this process last looked or, after a
 * takeover, since its newest copy was pulled (pure). Copies of older helpers carry no restart count; then
 * only a container start after the copy tells, and Kubernetes keeps start times to the second.
 */
export function restartedSinceSeen(o: {
  restarts: number;
  seen: number | undefined;
  newest: Copy | undefined;
  startedAt: number;
}): boolean {
  const baseline = o.seen ?? o.newest?.restartCount;
  if (baseline !== undefined) return o.restarts > baseline;
  return o.restarts > 0 && !!o.newest && o.startedAt > Date.parse(o.newest.storedAt);
}

/** The app container's restarts this process saw last, and which container that was. */
export interface SeenRestarts {
  container: string | undefined;
  restarts: number;
}

/**
 * The count to compare a Pod's app container restarts with (pure): the one seen last, if it was of the same
 * container. When the app container is another one now (the policy's `container` changed, or the ports that
 * choose it), the other container's count says nothing about this one's memory: the current count becomes
 * the baseline. Compared across containers, a sidecar that had restarted more often than the app was taken
 * for an app restart, and an old copy pushed into the live app.
 */
export function seenBaseline(
  prev: SeenRestarts | undefined,
  container: string | undefined,
  restarts: number,
): number | undefined {
  if (!prev) return undefined;
  return prev.container === container ? prev.restarts : restarts;
}

/** What is known of a restart in place when its restore is planned. */
export interface RestartFacts {
  /** Container restarts the restore is for (the API's count, or one more when the app's id showed it first). */
  restarts: number;
  /**
   * When the restarted container started, as the API shows it (whole seconds, so the true start is at or
   * after it); 0 when it is not running yet.
   */
  startedAt: number;
  /** The new process's identity, when a pull saw it before the API showed the restart. */
  instance?: string;
}

/**
 * The generations a restore may use, newest first (pure). After an orphaned Pod: all. After a restart in
 * place: an app that sends its process identity never had a pull of its new process stored, so all; for one
 * that does not, only copies pulled before the new process could have started, and not pulled when the API
 * already showed the restart. A copy of the new process would restore its empty start state.
 */
export function restorableCopies(r: CheckpointRecord, restart?: RestartFacts): Copy[] {
  const all = [...r.generations].sort((a, b) => b.sequence - a.sequence);
  const newest = all[0];
  if (!restart || !newest || newest.instance !== undefined) return all;
  return all.filter(
    (c) =>
      (c.restartCount === undefined || c.restartCount < restart.restarts) &&
      (restart.startedAt === 0 || pullTime(c) < restart.startedAt),
  );
}
