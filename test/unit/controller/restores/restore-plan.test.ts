// Restore planning: orphans to new Pods, restarts, and which generations a restore may use.
import { addCopy } from '../../../../src/controller/checkpoints/checkpoint-book.js';
import {
  claimable,
  pairOrphans,
  restartedSinceSeen,
  restorableCopies,
} from '../../../../src/controller/restores/restore-plan.js';
import { record } from '../records.js';

describe('pairOrphans', () => {
  it('matches StatefulSet Pods by name, then newest state to newest Pod, each orphan once', () => {
    const o1 = record('web-0', [['a', 1]], { orphanedSince: 100, workload: 'StatefulSet/web' });
    const o2 = record('rs-abc', [['a', 3000]], { orphanedSince: 50 });
    const o3 = record('rs-def', [['a', 2000]], { orphanedSince: 200 });
    const pairs = pairOrphans(
      [o1, o2, o3],
      [
        { uid: 'new-web-0', name: 'web-0', createdAt: 1, statefulSet: true, workload: 'StatefulSet/web' },
        { uid: 'old', name: 'rs-1', createdAt: 10, statefulSet: false, workload: 'Deployment/app' },
        { uid: 'newest', name: 'rs-2', createdAt: 20, statefulSet: false, workload: 'Deployment/app' },
      ],
    );
    expect(pairs.get('new-web-0')).toBe(o1);
    expect(pairs.get('newest')).toBe(o2);
    expect(pairs.get('old')).toBe(o3);
  });
  it('after a takeover (all orphans seen at once) restores the newest state, not the first name', () => {
    // An older orphan was already restored into a Pod that has failed too; that Pod's own copy is newer.
    const stale = record('app-2vwvr', [['a', 1000]], { orphanedSince: 5 });
    const newer = record('app-g4m6q', [['b', 9000]], { orphanedSince: 5 });
    const pairs = pairOrphans(
      [stale, newer],
      [{ uid: 'r', name: 'app-x', createdAt: 1, statefulSet: false, workload: 'Deployment/app' }],
    );
    expect(pairs.get('r')).toBe(newer);
  });

  it('skips orphans with no copy unless their final checkpoint is still running', () => {
    const empty = record('gone', []);
    const finalizing = record('leaving', [], { finalizing: true });
    const pairs = pairOrphans(
      [empty, finalizing],
      [{ uid: 'n', name: 'x', createdAt: 1, statefulSet: false, workload: 'Deployment/app' }],
    );
    expect(pairs.get('n')).toBe(finalizing);
  });
});

describe('pairOrphans across workloads', () => {
  const newPod = (uid: string, workload?: string, createdAt = 1) => ({
    uid,
    name: uid,
    createdAt,
    statefulSet: false,
    ...(workload ? { workload } : {}),
  });

  it("gives a new Pod only an orphan of its own workload, however much newer another one's state is", () => {
    const a = record('a-1', [['n1', 1000]], { orphanedSince: 5, workload: 'Deployment/a' });
    const b = record('b-1', [['n1', 9000]], { orphanedSince: 5, workload: 'Deployment/b' });
    // A scaled down, B scaled up: B's new Pod is not A's replacement.
    const pairs = pairOrphans(
      [a, b],
      [newPod('b-new', 'Deployment/b', 2), newPod('b-newer', 'Deployment/b', 3)],
    );
    expect(pairs.get('b-newer')).toBe(b);
    expect(pairs.has('b-new')).toBe(false);
    expect(pairOrphans([a], [newPod('b-new', 'Deployment/b')]).size).toBe(0);
  });

  it('pairs nothing without a workload on either side (copies of older versions, unknown owners)', () => {
    const legacy = record('old', [['n1', 1000]], { orphanedSince: 5, workload: undefined });
    expect(pairOrphans([legacy], [newPod('n', 'Deployment/app')]).size).toBe(0);
    const a = record('a-1', [['n1', 1000]], { orphanedSince: 5 });
    expect(pairOrphans([a], [newPod('n')]).size).toBe(0);
  });

  it('keeps a StatefulSet name match within its StatefulSet', () => {
    const other = record('web-0', [['n1', 1000]], { orphanedSince: 5, workload: 'StatefulSet/other' });
    const pod = { uid: 'w', name: 'web-0', createdAt: 1, statefulSet: true, workload: 'StatefulSet/web' };
    expect(pairOrphans([other], [pod]).size).toBe(0);
  });
});

describe('claimable', () => {
  const orphan = record('app-a', [['n1', 1000]], { orphanedSince: 5, claimedBy: 'uid-app-b' });

  it('frees an orphan whose claimer was lost before its first checkpoint: its state lives only here', () => {
    expect(claimable(orphan, record('app-b', [], { orphanedSince: 9 }))).toBe(true);
  });

  it('keeps an orphan claimed while its claimer lives, runs its final pull, or has a checkpoint of its own', () => {
    expect(claimable(orphan, record('app-b', []))).toBe(false);
    expect(claimable(orphan, record('app-b', [], { orphanedSince: 9, finalizing: true }))).toBe(false);
    expect(claimable(orphan, record('app-b', [['n2', 2000]], { orphanedSince: 9 }))).toBe(false);
  });

  it('frees an unclaimed orphan, or one whose claimer is forgotten', () => {
    expect(claimable(record('app-c', [['n1', 1]]), undefined)).toBe(true);
    expect(claimable(orphan, undefined)).toBe(true);
  });
});

describe('restartedSinceSeen', () => {
  const copy = (restartCount?: number) => ({
    node: 'b',
    sequence: 1,
    digest: 'sha256:x',
    sizeBytes: 1,
    storedAt: '2026-01-01T00:00:10.500Z',
    ...(restartCount !== undefined ? { restartCount } : {}),
  });
  const at = (iso: string) => Date.parse(iso);
  it('compares with the count this process saw last, before anything else', () => {
    expect(restartedSinceSeen({ restarts: 2, seen: 1, newest: copy(2), startedAt: 0 })).toBe(true);
    expect(restartedSinceSeen({ restarts: 1, seen: 1, newest: copy(0), startedAt: 0 })).toBe(false);
  });
  it("after a takeover, compares with the count stored with the newest copy, whatever the start time's precision", () => {
    // The container started in the same second as the copy: a start-time comparison would miss it.
    const startedAt = at('2026-01-01T00:00:10Z');
    expect(restartedSinceSeen({ restarts: 1, seen: undefined, newest: copy(0), startedAt })).toBe(true);
    expect(restartedSinceSeen({ restarts: 1, seen: undefined, newest: copy(1), startedAt })).toBe(false);
  });
  it('falls back to the start time for copies without a count, and never restarts a Pod without copies', () => {
    const later = at('2026-01-01T00:00:11Z');
    expect(restartedSinceSeen({ restarts: 1, seen: undefined, newest: copy(), startedAt: later })).toBe(true);
    expect(restartedSinceSeen({ restarts: 0, seen: undefined, newest: copy(), startedAt: later })).toBe(
      false,
    );
    expect(restartedSinceSeen({ restarts: 3, seen: undefined, newest: undefined, startedAt: later })).toBe(
      false,
    );
  });
});

describe('restorableCopies', () => {
  // Pulled at 10.2 s, 11.2 s, 12.2 s; the restarted container started at 12.x s (the API says 12 s).
  const gens = (o: { instance?: string; restartCounts?: number[] } = {}) => {
    const r = record('a', []);
    [10_200, 11_200, 12_200].forEach((pulledAt, i) =>
      addCopy(r, {
        node: 'n1',
        sequence: pulledAt,
        pulledAt,
        restartCount: o.restartCounts?.[i] ?? 0,
        ...(o.instance ? { instance: o.instance } : {}),
        digest: 'd',
        sizeBytes: 1,
        storedAt: new Date(pulledAt + 5).toISOString(),
      }),
    );
    return r;
  };
  it('after an orphan, or for an app that sends its process id, offers every generation newest first', () => {
    expect(restorableCopies(gens()).map((c) => c.sequence)).toEqual([12_200, 11_200, 10_200]);
    expect(
      restorableCopies(gens({ instance: 'p1' }), { restarts: 1, startedAt: 12_000 }).map((c) => c.sequence),
    ).toEqual([12_200, 11_200, 10_200]);
  });
  it('without a process id, only copies pulled before the container could have started (whole seconds)', () => {
    expect(restorableCopies(gens(), { restarts: 1, startedAt: 12_000 }).map((c) => c.sequence)).toEqual([
      11_200, 10_200,
    ]);
    // Not pulled when the API already counted the restart, whatever the clocks say.
    expect(
      restorableCopies(gens({ restartCounts: [0, 1, 1] }), { restarts: 1, startedAt: 13_000 }).map(
        (c) => c.sequence,
      ),
    ).toEqual([10_200]);
    // A container not running yet: no pull can have reached it.
    expect(restorableCopies(gens(), { restarts: 1, startedAt: 0 })).toHaveLength(3);
    expect(restorableCopies(gens(), { restarts: 1, startedAt: 10_000 })).toEqual([]);
  });
});
