// The per-Pod protection state machine: one test per transition of the table in protection.ts.
import { protectionStep, type ProtectionFacts } from '../../../../src/controller/restores/protection.js';

/** A Pod seen before, settled, with a copy and its gate open: the steady state. */
const protectedPod: ProtectionFacts = {
  restoring: false,
  newProcessSeen: false,
  restartedInPlace: false,
  hasOwnCopy: true,
  restoredBefore: false,
  namesProcess: false,
  firstLook: false,
  gateOpen: true,
  gateOpenedSinceStart: true,
  verifying: false,
  settled: true,
};

/** A Pod looked at for the first time with nothing of its own. */
const newPod: ProtectionFacts = {
  ...protectedPod,
  hasOwnCopy: false,
  firstLook: true,
  gateOpen: false,
  gateOpenedSinceStart: false,
  settled: false,
};

describe('protectionStep', () => {
  it('Protected → Protected: a settled Pod waits', () => {
    expect(protectionStep(protectedPod)).toEqual({ phase: 'Protected', step: 'wait' });
  });

  it('Restoring → Restoring: nothing else is decided while a restore runs, even a restart', () => {
    expect(protectionStep({ ...protectedPod, restoring: true, restartedInPlace: true })).toEqual({
      phase: 'Restoring',
      step: 'wait',
    });
  });

  it('RestoreFailed → RestoreFailed: unchanged policy and Pod, no retry', () => {
    expect(protectionStep({ ...newPod, failed: { changedSince: false } })).toEqual({
      phase: 'RestoreFailed',
      step: 'wait',
    });
  });

  it('RestoreFailed → Restoring: the policy or Pod changed since the failure', () => {
    expect(protectionStep({ ...newPod, failed: { changedSince: true } })).toEqual({
      phase: 'Restoring',
      step: 'retry-failed',
    });
  });

  it('Protected → Restarted: a pull met a new process; its own copy is restored behind a closed gate', () => {
    expect(protectionStep({ ...protectedPod, newProcessSeen: true, namesProcess: true })).toEqual({
      phase: 'Restarted',
      step: 'restore-own',
      closeGate: true,
      seenBy: 'pull',
    });
  });

  it('a new process seen without a copy of its own is nothing to restore', () => {
    expect(protectionStep({ ...protectedPod, newProcessSeen: true, hasOwnCopy: false })).toEqual({
      phase: 'Protected',
      step: 'wait',
    });
  });

  it('Protected → Restarted: the API shows a restart of an app that does not name its process', () => {
    expect(protectionStep({ ...protectedPod, restartedInPlace: true })).toEqual({
      phase: 'Restarted',
      step: 'restore-own',
      closeGate: true,
      seenBy: 'api',
    });
  });

  it('Protected → Restarted (verify): an app that names its process is asked first, gate closed', () => {
    expect(protectionStep({ ...protectedPod, restartedInPlace: true, namesProcess: true })).toEqual({
      phase: 'Restarted',
      step: 'verify',
      closeGate: true,
    });
  });

  it('after a takeover, a gate opened since the container started stays open while a pull verifies', () => {
    const taken = {
      ...protectedPod,
      restartedInPlace: true,
      namesProcess: true,
      firstLook: true,
      settled: false,
    };
    expect(protectionStep(taken)).toEqual({ phase: 'Restarted', step: 'verify', closeGate: false });
    // The same gate, opened before the container's start: it says nothing of this process.
    expect(protectionStep({ ...taken, gateOpenedSinceStart: false })).toMatchObject({ closeGate: true });
    // Not a first look: this leader saw the restart happen, so it closes the gate.
    expect(protectionStep({ ...taken, firstLook: false })).toMatchObject({ closeGate: true });
  });

  it('an app that does not name its process is never trusted to be restored already', () => {
    expect(
      protectionStep({ ...protectedPod, restartedInPlace: true, firstLook: true, settled: false }),
    ).toMatchObject({ step: 'restore-own', closeGate: true });
  });

  it('Verifying → Verifying: pulls go on until one settles it', () => {
    expect(protectionStep({ ...protectedPod, verifying: true, settled: false })).toEqual({
      phase: 'Verifying',
      step: 'wait',
    });
  });

  it('Starting → Protected: a first look at a Pod with a copy settles it and opens a closed gate', () => {
    expect(protectionStep({ ...newPod, hasOwnCopy: true })).toEqual({
      phase: 'Protected',
      step: 'settle',
      openGate: true,
    });
  });

  it('Starting → Protected: restored before (by a previous leader), or its gate already open', () => {
    expect(protectionStep({ ...newPod, restoredBefore: true })).toMatchObject({
      step: 'settle',
      openGate: true,
    });
    expect(protectionStep({ ...newPod, gateOpen: true })).toEqual({
      phase: 'Protected',
      step: 'settle',
      openGate: false,
    });
  });

  it('Starting → Restoring or Protected: a new Pod with nothing of its own looks for a copy it replaces', () => {
    expect(protectionStep(newPod)).toEqual({ phase: 'Starting', step: 'restore-orphan' });
  });
});
