import type { CheckpointRecord, Copy } from './checkpoint-book.js';
import { newestCopy } from './checkpoint-book.js';

export interface NewPod {
  uid: string;
  name: string;
  createdAt: number;
  /** StatefulSet Pods keep their name across replacements, so name is the strongest match. */
  statefulSet: boolean;
}

/** When an orphan's state was taken: a final pull still running is the newest of all. */
function stateTime(o: CheckpointRecord): number {
  if (o.finalizing) return Number.POSITIVE_INFINITY;
  const newest = newestCopy(o);
  return newest ? Date.parse(newest.storedAt) || 0 : 0;
}

/**
 * Pairs orphaned checkpoints with new Pods that have no state (pure): a StatefulSet Pod takes the orphan
 * with its own name; the rest go newest state to newest Pod. The time a copy was stored is used, not when
 * this process saw the Pod go: after a takeover every orphan looks equally old, and an orphan already
 * restored into a Pod that has since failed too must never beat that Pod's own, newer state. An orphan is
 * used at most once.
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
    if (!pod.statefulSet) continue;
    const same = free.find((o) => o.pod === pod.name);
    if (same) {
      pairs.set(pod.uid, same);
      take(same);
    }
  }
  const rest = pods
    .filter((p) => !pairs.has(p.uid))
    .sort((a, b) => b.createdAt - a.createdAt || a.name.localeCompare(b.name));
  for (const pod of rest) {
    const o = free[0];
    if (!o) break;
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
