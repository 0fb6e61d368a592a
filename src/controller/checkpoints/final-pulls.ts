import { errorMessage, type Logger } from '../../runtime/logger.js';
import { newestCopy, type CheckpointRecord } from './checkpoint-book.js';
import type { ProtectedPod } from './protected-pod.js';
import type { Clock } from '../kube/clock.js';

/** Pause between the final pulls of a terminating Pod, and how long they may go on at most. */
const FINAL_PULL_GAP_MS = 100;
/** A claimed final copy is restored after this long even if the app still changes its state (not at SIGTERM). */
const FINAL_SETTLE_MAX_MS = 2000;
const FINAL_PULLS_MAX_MS = 30_000;
/**
 * The final pulls of a terminating Pod: one after another, until its replacement claimed the copy and the
 * state stopped changing (two pulls alike: the app got SIGTERM), or the pulls fail (the app exited), or the
 * grace period ends. A restore from this record waits on `r.finalPull` while `r.finalizing` or not
 * `r.finalSettled`, so it restores the last state, not one of a moment before SIGTERM.
 */
export async function finalPulls(
  s: { busy: boolean; running?: Promise<void>; entry: ProtectedPod },
  r: CheckpointRecord,
  o: {
    /** One pull now; false if it failed (reported as a failure unless `quiet`). */
    pull: (quiet: boolean) => Promise<boolean>;
    stopped: () => boolean;
    log: Logger;
    clock: Clock;
  },
): Promise<void> {
  const graceMs = (s.entry.pod.metadata?.deletionGracePeriodSeconds ?? 30) * 1000;
  const deadline = o.clock.monotonic() + Math.min(graceMs, FINAL_PULLS_MAX_MS);
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
        ok = await o.pull(!first);
      } finally {
        r.finalizing = false;
      }
      // A replacement may claim the copy before the kubelet delivered SIGTERM (it starts within a second on
      // the same node): its restore waits until the state stopped changing, briefly, not for the first copy.
      const digest = ok ? newestCopy(r)?.digest : undefined;
      if (r.claimedBy) claimedAt ??= o.clock.monotonic();
      // Judged once claimed, from the pulls around the claim: an app idle for a moment right after the
      // deletion may still change its state until SIGTERM.
      r.finalSettled =
        claimedAt !== undefined &&
        ((digest !== undefined && digest === lastDigest) ||
          o.clock.monotonic() - claimedAt >= FINAL_SETTLE_MAX_MS);
      lastDigest = digest;
      const done =
        !ok ||
        o.stopped() ||
        o.clock.monotonic() > deadline ||
        (r.claimedBy !== undefined && r.finalSettled === true);
      // The next pull's promise before this one settles: a restore waiting in between never spins.
      const settled = pullDone;
      if (!done) nextPull();
      settled();
      if (done) break;
      await o.clock.sleep(FINAL_PULL_GAP_MS);
      if (r.claimedBy !== undefined && r.finalSettled === true) break;
    }
  } catch (err) {
    o.log.warn('final checkpoint failed; the previous one will be restored', {
      pod: r.pod,
      error: errorMessage(err),
    });
  } finally {
    // In this order, at once: a restore waiting on `finalPull` wakes to find it gone, never a settled one.
    s.busy = false;
    r.finalizing = false;
    pullDone();
    r.finalPull = undefined;
  }
}
