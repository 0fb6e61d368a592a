/**
 * The per-Pod protection state machine: from what is observed of a protected Pod now (its restore, its
 * restarts, its copies, its gate), the phase it is in and the one step that moves it on. Pure: the restorer
 * gathers the facts, applies the step and records what it did, so every transition is decided here and
 * tested alone (test/unit/controller/restores/protection.test.ts).
 *
 * | Phase           | Observed                                                     | Step             | Gate             |
 * | --------------- | ------------------------------------------------------------ | ---------------- | ---------------- |
 * | `Restoring`     | a restore of the Pod runs                                    | `wait`           | closed           |
 * | `RestoreFailed` | its restore failed for good; policy and Pod unchanged since  | `wait`           | closed (why)     |
 * | `Restoring`     | its restore failed for good; policy or Pod changed since     | `retry-failed`   | closed           |
 * | `Restarted`     | a pull met a new process of the app; it has a copy           | `restore-own`    | close            |
 * | `Restarted`     | the API shows a restart since last seen; it has a copy       | `verify` (app names its process) or `restore-own` | close, unless a previous leader opened it since the start |
 * | `Verifying`     | pulls are learning which process answers                     | `wait`           | as it is         |
 * | `Protected`     | its restore is settled                                       | `wait`           | open             |
 * | `Protected`     | first look; it has state (a copy, a restore, an open gate)   | `settle`         | open             |
 * | `Starting`      | first look; nothing of its own                               | `restore-orphan` (a copy of a Pod it replaces) or `settle` (NothingToRestore) | closed until then |
 *
 * Until its step leaves it `Protected` the Pod is not pulled: an empty new process must never overwrite the
 * copy it is to be restored from.
 */
export type ProtectionPhase =
  'Starting' | 'Restoring' | 'RestoreFailed' | 'Restarted' | 'Verifying' | 'Protected';

/** What the restorer knows of one protected Pod when its policy is reconciled. */
export interface ProtectionFacts {
  /** A restore of this Pod is in progress. */
  restoring: boolean;
  /** Its restore failed for a reason a retry cannot fix: whether the policy or the Pod changed since. */
  failed?: { changedSince: boolean };
  /** A pull was answered by a new process of the app, not yet shown by the API. */
  newProcessSeen: boolean;
  /** The API shows more restarts of the app container than last seen (or than its newest copy knows). */
  restartedInPlace: boolean;
  /** The Pod has a checkpoint of its own with at least one copy. */
  hasOwnCopy: boolean;
  /** Its own record says it was restored from another Pod's copy. */
  restoredBefore: boolean;
  /** The app names its process (`Pull-State-Instance`): a pull can tell which process answers. */
  namesProcess: boolean;
  /** This term's first look at the Pod (after a takeover, or the Pod is new). */
  firstLook: boolean;
  /** The readiness gate is open. */
  gateOpen: boolean;
  /** The gate opened at or after the app container's start: that process got its state already. */
  gateOpenedSinceStart: boolean;
  /** Pulls are learning which process answers after a restart. */
  verifying: boolean;
  /** The Pod's restore is settled (done, or nothing to do): it may be pulled. */
  settled: boolean;
}

export type ProtectionStep =
  /** Nothing to do now; what runs (a restore, a check) or nothing moves it on. */
  | { phase: 'Restoring' | 'RestoreFailed' | 'Verifying' | 'Protected'; step: 'wait' }
  /** Start again the restore that failed, now that the policy or the Pod changed. */
  | { phase: 'Restoring'; step: 'retry-failed' }
  /** Restore the Pod from its own newest copy (a new process of the app runs in it). */
  | { phase: 'Restarted'; step: 'restore-own'; closeGate: boolean; seenBy: 'pull' | 'api' }
  /** Pull it until it answers: a new process is restored, the one restored already is left alone. */
  | { phase: 'Restarted'; step: 'verify'; closeGate: boolean }
  /** Settle: it has state already; open the gate if it is closed. */
  | { phase: 'Protected'; step: 'settle'; openGate: boolean }
  /** A new Pod with nothing of its own: restore the copy of a Pod it replaces, if there is one. */
  | { phase: 'Starting'; step: 'restore-orphan' };

/** The phase of a protected Pod and the step that moves it on (see the table above). */
export function protectionStep(f: ProtectionFacts): ProtectionStep {
  if (f.restoring) return { phase: 'Restoring', step: 'wait' };
  if (f.failed)
    return f.failed.changedSince
      ? { phase: 'Restoring', step: 'retry-failed' }
      : { phase: 'RestoreFailed', step: 'wait' };
  // The copies are all of the old process: the new one's answer was refused as a restart, never stored.
  if (f.newProcessSeen && f.hasOwnCopy)
    return { phase: 'Restarted', step: 'restore-own', closeGate: true, seenBy: 'pull' };
  if (f.restartedInPlace && f.hasOwnCopy) {
    // After a takeover, a gate opened since the container started says a previous leader restored this
    // process already; an app that names its process lets a pull confirm it without closing the gate.
    const trusted = f.firstLook && f.namesProcess && f.gateOpenedSinceStart;
    return f.namesProcess
      ? { phase: 'Restarted', step: 'verify', closeGate: !trusted }
      : { phase: 'Restarted', step: 'restore-own', closeGate: !trusted, seenBy: 'api' };
  }
  if (f.verifying) return { phase: 'Verifying', step: 'wait' };
  if (f.settled) return { phase: 'Protected', step: 'wait' };
  // It has state already: a previous leader restored or checkpointed it, and may have died before opening
  // the gate.
  if (f.hasOwnCopy || f.restoredBefore || f.gateOpen)
    return { phase: 'Protected', step: 'settle', openGate: !f.gateOpen };
  return { phase: 'Starting', step: 'restore-orphan' };
}
