// A policy's status: conditions, checkpoints, bounded size, write pacing.
import { setCondition } from '../../../../src/controller/kube/conditions.js';
import { MAX_LISTED_CHECKPOINTS, buildStatus } from '../../../../src/controller/policies/policy-status.js';
import { holdsWritten, nextWriteAt } from '../../../../src/controller/policies/status-writer.js';
import { record } from '../records.js';

describe('status', () => {
  const now = new Date('2026-01-01T00:00:00Z');
  it('keeps lastTransitionTime while a condition keeps its status', () => {
    const first = setCondition([], { type: 'Ready', status: 'True', reason: 'A', message: 'm' }, 1, now);
    const same = setCondition(
      first,
      { type: 'Ready', status: 'True', reason: 'B', message: 'n' },
      2,
      new Date('2027-01-01T00:00:00Z'),
    );
    expect(same[0]!.lastTransitionTime).toBe(first[0]!.lastTransitionTime);
    expect(same[0]!.observedGeneration).toBe(2);
    const flipped = setCondition(
      first,
      { type: 'Ready', status: 'False', reason: 'C', message: 'o' },
      2,
      new Date('2027-01-01T00:00:00Z'),
    );
    expect(flipped[0]!.lastTransitionTime).toBe('2027-01-01T00:00:00Z');
  });

  it('reports checkpoints, orphans, readiness and the first failure', () => {
    const ok = record('a', [
      ['n1', 2000],
      ['n2', 1000],
    ]);
    const failing = record('b', [['n1', 1500]], {
      lastFailure: { reason: 'PullFailed', message: 'GET answered 500', at: 0 },
    });
    const orphan = record('c', [['n3', 500]]);
    const s = buildStatus({
      generation: 3,
      previous: undefined,
      protectedUIDs: new Set(['uid-a', 'uid-b']),
      records: [ok, failing, orphan],
      now,
    });
    expect(s.protectedPods).toBe(2);
    expect(s.checkpoints!.map((c) => [c.pod, c.node, c.orphaned ?? false])).toEqual([
      ['a', 'n1', false],
      ['b', 'n1', false],
      ['c', 'n3', true],
    ]);
    expect(s.lastCheckpointTime).toBe(new Date(2000).toISOString());
    const ready = s.conditions!.find((c) => c.type === 'Ready')!;
    const degraded = s.conditions!.find((c) => c.type === 'Degraded')!;
    expect([ready.status, ready.reason]).toEqual(['True', 'Checkpointing']);
    expect([degraded.status, degraded.reason]).toEqual(['True', 'PullFailed']);
    expect(degraded.message).toContain('Pod b: GET answered 500');
  });

  it("says Degraded SameNodeCopy, naming the Pods, while checkpoints are on their Pod's own node only", () => {
    const alone = record('a', [['n1', 2000]], { podNode: 'n1' });
    const elsewhere = record('b', [['n2', 2000]], { podNode: 'n1' });
    const status = (records: ReturnType<typeof record>[]) =>
      buildStatus({
        generation: 1,
        previous: undefined,
        protectedUIDs: new Set(records.map((r) => r.podUID)),
        records,
        now,
      });
    const s = status([alone, elsewhere]);
    const degraded = s.conditions!.find((c) => c.type === 'Degraded')!;
    expect([degraded.status, degraded.reason]).toEqual(['True', 'SameNodeCopy']);
    expect(degraded.message).toContain('1 of 2 Pods have their checkpoint on their own node only (a on n1)');
    expect(degraded.message).toContain('the loss of its node is not');
    expect(s.conditions!.find((c) => c.type === 'Ready')!.status).toBe('True');
    // A copy on another node as well: protected against the node's loss.
    const both = record(
      'a',
      [
        ['n1', 2000],
        ['n2', 2000],
      ],
      { podNode: 'n1' },
    );
    expect(status([both, elsewhere]).conditions!.find((c) => c.type === 'Degraded')!.reason).toBe(
      'AsExpected',
    );
    // A failure says more than where the copies are.
    const failing = record('c', [['n1', 2000]], {
      podNode: 'n1',
      lastFailure: { reason: 'NoTargetNode', message: 'no node but the Pod', at: 0 },
    });
    expect(status([alone, failing]).conditions!.find((c) => c.type === 'Degraded')!.reason).toBe(
      'NoTargetNode',
    );
  });

  it('stays under 64 KiB for a policy over 2,000 Pods: counts for all, the 50 most worth a look listed', () => {
    const records = Array.from({ length: 2000 }, (_, n) =>
      record(`app-${String(n).padStart(4, '0')}-7d9f8b6c5d-x2k4q`, [[`node-${n % 7}`, 1_000_000 + n]], {
        podUID: `0f4c2a1e-1111-2222-3333-${String(n).padStart(12, '0')}`,
        ...(n % 500 === 7
          ? { lastFailure: { reason: 'PullFailed', message: 'GET answered 500', at: 0 } }
          : {}),
      }),
    );
    const protectedUIDs = new Set(records.slice(0, 1990).map((r) => r.podUID));
    const s = buildStatus({ generation: 1, previous: undefined, protectedUIDs, records, now });
    expect(Buffer.byteLength(JSON.stringify(s))).toBeLessThan(64 * 1024);
    expect(s.checkpointSummary).toEqual({
      pods: 2000,
      current: 1986,
      failing: 4,
      withoutCheckpoint: 0,
      orphaned: 10,
      listed: MAX_LISTED_CHECKPOINTS,
    });
    const listed = new Set(s.checkpoints!.map((c) => c.pod));
    // Failing and gone Pods are listed whatever their names; the rest are the oldest checkpoints.
    for (const n of [7, 507, 1007, 1507, 1990, 1999]) expect(listed.has(records[n]!.pod)).toBe(true);
    expect(listed.has(records[1989]!.pod)).toBe(false);
    expect(s.lastCheckpointTime).toBe(new Date(1_000_000 + 1999).toISOString());
  });

  it('is not Ready while a Pod waits for its first checkpoint, and says so for an invalid spec', () => {
    const s = buildStatus({
      generation: 1,
      previous: undefined,
      protectedUIDs: new Set(['uid-x']),
      records: [],
      now,
    });
    expect(s.conditions!.find((c) => c.type === 'Ready')!.reason).toBe('WaitingForFirstCheckpoint');
    const bad = buildStatus({
      generation: 1,
      previous: undefined,
      protectedUIDs: new Set(),
      records: [],
      now,
      problem: { reason: 'InvalidSpec', message: 'spec.port bad', blocking: true },
    });
    expect(bad.conditions!.map((c) => [c.type, c.status, c.reason])).toEqual([
      ['Degraded', 'True', 'InvalidSpec'],
      ['Ready', 'False', 'InvalidSpec'],
    ]);
  });

  it('coalesces writes: nothing when unchanged, at once for condition changes, else after the period', () => {
    const prev = { json: 'a', conditions: 'c', at: 1000 };
    expect(nextWriteAt(prev, { json: 'a', conditions: 'c' }, 5000)).toBeUndefined();
    expect(nextWriteAt(prev, { json: 'b', conditions: 'd' }, 5000)).toBe(0);
    expect(nextWriteAt(prev, { json: 'b', conditions: 'c' }, 5000)).toBe(6000);
    expect(nextWriteAt(undefined, { json: 'b', conditions: 'c' }, 5000)).toBe(0);
  });

  it('tells a status someone replaced from one the API merely spells its own way', () => {
    const wrote = {
      protectedPods: 1,
      conditions: [{ type: 'Ready', status: 'True', reason: 'Checkpointing' }],
      checkpointSummary: { pods: 1, current: 1 },
    };
    // Other key order, and fields the writer never sent (merge patches keep them): still what was written.
    const stored = {
      checkpointSummary: { current: 1, pods: 1, legacy: 3 },
      conditions: [{ reason: 'Checkpointing', status: 'True', type: 'Ready' }],
      lastCheckpointTime: 'x',
      protectedPods: 1,
    };
    expect(holdsWritten(stored, wrote)).toBe(true);
    expect(holdsWritten({ ...stored, protectedPods: 7 }, wrote)).toBe(false);
    expect(holdsWritten({ ...stored, conditions: [] }, wrote)).toBe(false);
    expect(holdsWritten({ ...stored, checkpointSummary: undefined }, wrote)).toBe(false);
    expect(holdsWritten({}, wrote)).toBe(false);
  });
});
