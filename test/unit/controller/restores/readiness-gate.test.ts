// The readiness gate is kept at the decided value until the API shows it: on jest's fake clock, with a
// scripted patch standing in for the API server and a Pod object standing in for the informer's cache.
import type { V1Pod, V1PodCondition } from '@kubernetes/client-node';
import { READINESS_GATE } from '../../../../src/api/index.js';
import { GateWriter } from '../../../../src/controller/restores/readiness-gate.js';
import { createLogger } from '../../../../src/runtime/logger.js';
import { FakeClock } from '../../../../harness/fake-clock.js';

let cached: V1Pod | undefined;
let writes: V1PodCondition[][];
let failNext: number;
let term: AbortController;
let writer: GateWriter;

function newPod(): V1Pod {
  return {
    metadata: { name: 'p', namespace: 'ns', uid: 'u1' },
    spec: { containers: [{ name: 'app' }], readinessGates: [{ conditionType: READINESS_GATE }] },
    status: { conditions: [] },
  };
}

/** The API server took the patch: the informer delivers the Pod with it a little later. */
function apply(conditions: V1PodCondition[]): void {
  const others = (cached!.status!.conditions ?? []).filter((c) => !conditions.some((x) => x.type === c.type));
  cached = { ...cached!, status: { conditions: [...others, ...conditions] } };
}

const gateOf = (pod: V1Pod | undefined) =>
  pod?.status?.conditions?.find((c) => c.type === READINESS_GATE)?.status;

let clock: FakeClock;

beforeEach(() => {
  clock = new FakeClock();
  cached = newPod();
  writes = [];
  failNext = 0;
  term = new AbortController();
  writer = new GateWriter({
    patch: async (_pod, conditions) => {
      if (failNext > 0) {
        failNext--;
        throw new Error('etcdserver: request timed out');
      }
      writes.push(conditions);
      apply(conditions);
    },
    currentPod: (_ns, _name, uid) => (cached?.metadata?.uid === uid ? cached : undefined),
    log: createLogger('test', 'error'),
    signal: term.signal,
    clock,
  });
});
afterEach(() => {
  term.abort();
});

describe('GateWriter', () => {
  it('writes the gate again after a write that failed, until the API shows it', async () => {
    failNext = 1;
    await writer.set(newPod(), 'True', 'Restored', 'restored 10 bytes');
    expect(writes).toHaveLength(0);
    expect(gateOf(cached)).toBeUndefined();
    await clock.advance(1000);
    expect(writes).toHaveLength(1);
    expect(gateOf(cached)).toBe('True');
    // Shown in the cache: nothing more is written.
    await clock.advance(30_000);
    expect(writes).toHaveLength(1);
  });

  it('closes Ready together with the gate', async () => {
    await writer.set(newPod(), 'False', 'RestoreInProgress', 'restoring');
    expect(writes[0]!.map((c) => [c.type, c.status])).toEqual([
      [READINESS_GATE, 'False'],
      ['Ready', 'False'],
    ]);
  });

  it('writes only the newest decision, in order', async () => {
    failNext = 1;
    const closing = writer.set(newPod(), 'False', 'RestoreInProgress', 'restoring');
    const opening = writer.set(newPod(), 'True', 'Restored', 'restored');
    await Promise.all([closing, opening]);
    await clock.advance(5000);
    expect(writes.map((w) => w[0]!.reason)).toEqual(['Restored']);
    expect(gateOf(cached)).toBe('True');
  });

  it('writes the gate again when someone else changed it', async () => {
    await writer.set(newPod(), 'True', 'Restored', 'restored');
    await clock.advance(3000);
    apply([{ type: READINESS_GATE, status: 'False', reason: 'SomeoneElse' }]);
    writer.podChanged(cached!);
    await clock.advance(10);
    expect(writes).toHaveLength(2);
    expect(gateOf(cached)).toBe('True');
  });

  it('keeps the transition time when only the reason changes', async () => {
    await writer.set(newPod(), 'True', 'NothingToRestore', 'fresh');
    const opened = writes[0]![0]!.lastTransitionTime;
    await clock.advance(5000);
    await writer.set(newPod(), 'True', 'StateKept', 'kept');
    expect(writes[1]![0]!.reason).toBe('StateKept');
    expect(writes[1]![0]!.lastTransitionTime).toEqual(opened);
    await writer.set(newPod(), 'False', 'RestoreInProgress', 'restoring');
    expect(writes[2]![0]!.lastTransitionTime).not.toEqual(opened);
  });

  it('gives up on a Pod that is gone, and ignores Pods without the gate', async () => {
    failNext = 100;
    const pending = writer.set(newPod(), 'True', 'Restored', 'restored');
    await pending;
    cached = undefined;
    await clock.advance(60_000);
    expect(failNext).toBeGreaterThan(95);
    const ungated = { ...newPod(), spec: { containers: [{ name: 'app' }] } };
    await writer.set(ungated, 'True', 'Restored', 'restored');
    expect(writes).toHaveLength(0);
  });
});
