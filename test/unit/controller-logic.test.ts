// Pure logic of the controller: scheduling, placement, pairing, status and condition rules.
import { backoffDelay, jittered } from '../../src/controller/backoff.js';
import type { CheckpointRecord } from '../../src/controller/checkpoint-book.js';
import { addCopy, CheckpointBook, nextSequence } from '../../src/controller/checkpoint-book.js';
import { setCondition } from '../../src/controller/conditions.js';
import { containersStarted, probeTarget, probeVerdict } from '../../src/controller/fault-detector.js';
import { withFence } from '../../src/controller/node-fence.js';
import { RecentKeys } from '../../src/controller/recent-keys.js';
import { matchesSelector } from '../../src/controller/label-selector.js';
import { LeaseObserver } from '../../src/controller/leader-election.js';
import { expiredOrphans } from '../../src/controller/orphan-collector.js';
import { MAX_LISTED_CHECKPOINTS, buildStatus } from '../../src/controller/policy-status.js';
import { pairOrphans, restartedSinceSeen, restorableCopies } from '../../src/controller/restore-plan.js';
import { nextWriteAt } from '../../src/controller/status-writer.js';
import { chooseTargets } from '../../src/controller/target-nodes.js';
import { WorkQueue } from '../../src/controller/workqueue.js';

function record(
  pod: string,
  copies: [string, number][],
  extra: Partial<CheckpointRecord> = {},
): CheckpointRecord {
  const r: CheckpointRecord = {
    namespace: 'ns',
    policy: 'p',
    pod,
    podUID: `uid-${pod}`,
    copies: new Map(),
    generations: [],
    lastSequence: 0,
    ...extra,
  };
  for (const [node, sequence] of copies)
    addCopy(r, {
      node,
      sequence,
      digest: `sha256:${'a'.repeat(64)}`,
      sizeBytes: 10,
      storedAt: new Date(sequence).toISOString(),
    });
  return r;
}

describe('backoff', () => {
  it('doubles from the base up to the cap, and jitter stays within its fraction', () => {
    expect([1, 2, 3, 4].map((n) => backoffDelay(n, { baseMs: 5, maxMs: 30 }))).toEqual([5, 10, 20, 30]);
    expect(backoffDelay(0)).toBe(0);
    expect(backoffDelay(1000)).toBe(1_000_000);
    expect(jittered(1000, 0.05, () => 0)).toBe(950);
    expect(jittered(1000, 0.05, () => 1)).toBe(1050);
  });
});

describe('chooseTargets', () => {
  const candidates = [
    { node: 'a', load: 0 },
    { node: 'b', load: 5 },
    { node: 'c', load: 1 },
  ];
  it("never picks the Pod's own node and prefers the least loaded", () => {
    expect(chooseTargets({ podNode: 'a', copies: 1, current: [], candidates, key: 'x' })).toEqual(['c']);
    expect(chooseTargets({ podNode: 'a', copies: 2, current: [], candidates, key: 'x' })).toEqual(['c', 'b']);
  });
  it('keeps a valid current target (sticky) and replaces one that went away', () => {
    expect(chooseTargets({ podNode: 'a', copies: 1, current: ['b'], candidates, key: 'x' })).toEqual(['b']);
    expect(chooseTargets({ podNode: 'c', copies: 1, current: ['gone'], candidates, key: 'x' })).toEqual([
      'a',
    ]);
  });
  it('returns fewer nodes than asked when there are not enough, and none when only the own node is left', () => {
    expect(chooseTargets({ podNode: 'a', copies: 5, current: [], candidates, key: 'x' })).toHaveLength(2);
    expect(
      chooseTargets({ podNode: 'a', copies: 1, current: [], candidates: [{ node: 'a', load: 0 }], key: 'x' }),
    ).toEqual([]);
  });
  it('spreads Pods with equal loads over different nodes', () => {
    const equal = ['n1', 'n2', 'n3', 'n4'].map((node) => ({ node, load: 0 }));
    const picks = new Set(
      Array.from(
        { length: 40 },
        (_, i) =>
          chooseTargets({ podNode: 'x', copies: 1, current: [], candidates: equal, key: `pod-${i}` })[0],
      ),
    );
    expect(picks.size).toBeGreaterThan(2);
  });
});

describe('WorkQueue', () => {
  it('de-duplicates waiting keys, re-runs a key added while it runs, and retries failures with backoff', async () => {
    const runs: string[] = [];
    let failOnce = true;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const q = new WorkQueue(
      async (key) => {
        runs.push(key);
        if (key === 'slow' && runs.filter((k) => k === 'slow').length === 1) await gate;
        if (key === 'flaky' && failOnce) {
          failOnce = false;
          throw new Error('boom');
        }
      },
      { concurrency: 2, backoff: { baseMs: 10, maxMs: 10 } },
    );
    q.add('slow');
    q.add('slow'); // running: remembered once
    q.add('flaky');
    q.add('flaky'); // waiting or running: no duplicate
    await new Promise((r) => setTimeout(r, 50));
    release();
    await new Promise((r) => setTimeout(r, 50));
    q.stop();
    expect(runs.filter((k) => k === 'slow')).toHaveLength(2);
    expect(runs.filter((k) => k === 'flaky')).toHaveLength(2);
  });

  it('collects keys while paused and runs each once on resume', async () => {
    const runs: string[] = [];
    const q = new WorkQueue(async (key) => void runs.push(key), { concurrency: 2, paused: true });
    q.add('a');
    q.add('b');
    q.add('a');
    await new Promise((r) => setTimeout(r, 20));
    expect(runs).toEqual([]);
    q.resume();
    await new Promise((r) => setTimeout(r, 20));
    q.stop();
    expect(runs.sort()).toEqual(['a', 'b']);
  });
});

describe('matchesSelector', () => {
  it('applies matchLabels and every operator', () => {
    const labels = { app: 'x', tier: 'db' };
    expect(matchesSelector({ matchLabels: { app: 'x' } }, labels)).toBe(true);
    expect(matchesSelector({ matchLabels: { app: 'y' } }, labels)).toBe(false);
    expect(
      matchesSelector({ matchExpressions: [{ key: 'tier', operator: 'In', values: ['db'] }] }, labels),
    ).toBe(true);
    expect(
      matchesSelector({ matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['db'] }] }, labels),
    ).toBe(false);
    expect(matchesSelector({ matchExpressions: [{ key: 'gpu', operator: 'DoesNotExist' }] }, labels)).toBe(
      true,
    );
    expect(matchesSelector({ matchExpressions: [{ key: 'gpu', operator: 'Exists' }] }, labels)).toBe(false);
    expect(matchesSelector(undefined, labels)).toBe(false);
  });
});

describe('pairOrphans', () => {
  it('matches StatefulSet Pods by name, then newest state to newest Pod, each orphan once', () => {
    const o1 = record('web-0', [['a', 1]], { orphanedSince: 100 });
    const o2 = record('rs-abc', [['a', 3000]], { orphanedSince: 50 });
    const o3 = record('rs-def', [['a', 2000]], { orphanedSince: 200 });
    const pairs = pairOrphans(
      [o1, o2, o3],
      [
        { uid: 'new-web-0', name: 'web-0', createdAt: 1, statefulSet: true },
        { uid: 'old', name: 'rs-1', createdAt: 10, statefulSet: false },
        { uid: 'newest', name: 'rs-2', createdAt: 20, statefulSet: false },
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
      [{ uid: 'r', name: 'app-x', createdAt: 1, statefulSet: false }],
    );
    expect(pairs.get('r')).toBe(newer);
  });

  it('skips orphans with no copy unless their final checkpoint is still running', () => {
    const empty = record('gone', []);
    const finalizing = record('leaving', [], { finalizing: true });
    const pairs = pairOrphans(
      [empty, finalizing],
      [{ uid: 'n', name: 'x', createdAt: 1, statefulSet: false }],
    );
    expect(pairs.get('n')).toBe(finalizing);
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

describe('checkpoint book', () => {
  it('continues sequences above both the clock and the last one used', () => {
    expect(nextSequence(record('p', [], { lastSequence: 5 }), 100)).toBe(100);
    expect(nextSequence(record('p', [], { lastSequence: 500 }), 100)).toBe(501);
  });
  it('learns helper inventories, keeping the newest copy per node', () => {
    const book = new CheckpointBook();
    const meta = {
      id: 'ns_u',
      namespace: 'ns',
      policy: 'p',
      policyUID: 'pu',
      pod: 'pod',
      podUID: 'u',
      sizeBytes: 3,
      digest: 'd',
      contentType: 't',
      storedAt: 'x',
    };
    book.learnInventory('a', [{ ...meta, sequence: 7 }]);
    book.learnInventory('a', [{ ...meta, sequence: 3 }]);
    book.learnInventory('b', [{ ...meta, sequence: 9 }]);
    const r = book.get('u')!;
    expect(r.copies.get('a')!.sequence).toBe(7);
    expect(r.lastSequence).toBe(9);
    expect(book.loadByNode()).toEqual(
      new Map([
        ['a', 1],
        ['b', 1],
      ]),
    );
  });
  it('expires orphans only after the retention', () => {
    const rs = [
      record('a', [], { orphanedSince: 0 }),
      record('b', [], { orphanedSince: 900 }),
      record('c', []),
    ];
    expect(expiredOrphans(rs, 1000, 500).map((r) => r.pod)).toEqual(['a']);
  });
});

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
});

describe('fault detection helpers', () => {
  it('probes the liveness httpGet target (named ports resolved), else the state path', () => {
    const pod = {
      spec: {
        containers: [
          {
            name: 'a',
            ports: [{ name: 'http', containerPort: 9000 }],
            livenessProbe: { httpGet: { path: '/healthz', port: 'http' } },
          },
        ],
      },
    };
    expect(probeTarget(pod, { port: 8080, path: '/state' })).toEqual({ port: 9000, path: '/healthz' });
    expect(probeTarget({ spec: { containers: [{ name: 'a' }] } }, { port: 8080, path: '/state' })).toEqual({
      port: 8080,
      path: '/state',
    });
  });
  it("adds and removes only the operator's own taint", () => {
    const other = { key: 'node.kubernetes.io/unreachable', effect: 'NoExecute' };
    const fenced = withFence([other], true);
    expect(fenced).toEqual([other, { key: 'pullstate.hitachienergy.com/unreachable', effect: 'NoSchedule' }]);
    expect(withFence(fenced, true)).toHaveLength(2);
    expect(withFence(fenced, false)).toEqual([other]);
  });
  it('judges Lease expiry by the local time the record last changed, not by the holder clock', () => {
    let now = 0;
    const observer = new LeaseObserver(() => now);
    // The holder's clock runs an hour behind: its renewTime looks stale to us, yet it renews every 2 s.
    const lease = (renewed: string) => ({
      spec: { holderIdentity: 'a', leaseDurationSeconds: 15, renewTime: new Date(renewed) },
    });
    expect(observer.observe(lease('2026-01-01T00:00:00Z'))).toBe(false);
    for (let s = 2; s <= 60; s += 2) {
      now = s * 1000;
      expect(observer.observe(lease(`2026-01-01T00:00:${String(s).padStart(2, '0')}Z`))).toBe(false);
    }
    // The holder stops renewing: expired once the unchanged record is a whole lease duration old locally,
    // even though its renewTime (an hour in the future, say) would never expire by the clocks.
    const last = lease('2099-01-01T00:00:00Z');
    now = 61_000;
    expect(observer.observe(last)).toBe(false);
    now = 75_000;
    expect(observer.observe(last)).toBe(false);
    now = 76_000;
    expect(observer.observe(last)).toBe(true);
    expect(new LeaseObserver(() => 0).observe({ spec: {} })).toBe(true);
  });
});

describe('fast-failover probes', () => {
  const step = (
    s: { failures: number; answered: boolean },
    ok: boolean,
    started = true,
    restoring = false,
    pulledSinceStart = false,
  ) => probeVerdict(s, { ok, started, restoring, pulledSinceStart });

  it('never counts failures of an app that has not answered since it started (a slow start)', () => {
    let s = { failures: 0, answered: false };
    for (let i = 0; i < 100; i++) s = step(s, false);
    expect(s).toEqual({ failures: 0, answered: false });
    s = step(s, true);
    expect(s).toEqual({ failures: 0, answered: true });
    s = step(step(step(s, false), false), false);
    expect(s.failures).toBe(3);
  });

  it('counts nothing before the kubelet reports the containers started (startupProbe), and re-arms then', () => {
    let s = step({ failures: 2, answered: true }, true, false);
    expect(s).toEqual({ failures: 0, answered: false });
    s = step(s, false, true);
    expect(s.failures).toBe(0);
  });

  it('after a takeover, counts failures of a Pod whose current process was checkpointed (it answered)', () => {
    // A new leader never saw the app answer, but a copy with the current restart count proves it did.
    let s = { failures: 0, answered: false };
    s = step(s, false, true, false, true);
    s = step(s, false, true, false, true);
    expect(s).toEqual({ failures: 2, answered: true });
  });

  it('counts nothing while a restore runs', () => {
    expect(step({ failures: 1, answered: true }, false, true, true)).toEqual({ failures: 0, answered: true });
  });

  it('takes containers as started only when every one is running and started', () => {
    const pod = (started: boolean[]) => ({
      status: {
        containerStatuses: started.map((st, i) => ({
          name: `c${i}`,
          image: 'x',
          imageID: '',
          ready: st,
          restartCount: 0,
          started: st,
          state: { running: {} },
        })),
      },
    });
    expect(containersStarted(pod([true, true]))).toBe(true);
    expect(containersStarted(pod([true, false]))).toBe(false);
    expect(containersStarted(pod([]))).toBe(false);
  });
});

describe('RecentKeys', () => {
  it('de-duplicates within the window and forgets after it', () => {
    let now = 0;
    const keys = new RecentKeys(1000, 100, () => now);
    expect(keys.seenRecently('a')).toBe(false);
    now = 500;
    expect(keys.seenRecently('a')).toBe(true);
    now = 1500;
    expect(keys.seenRecently('a')).toBe(false);
  });

  it('stays bounded by dropping expired and then the oldest keys, never the recent ones wholesale', () => {
    let now = 0;
    const keys = new RecentKeys(60_000, 3, () => now);
    for (const k of ['a', 'b', 'c', 'd']) {
      now += 10;
      keys.seenRecently(k);
    }
    expect(keys.size).toBe(3);
    // 'a' was dropped as the oldest; 'b'..'d' are still de-duplicated.
    expect(keys.seenRecently('d')).toBe(true);
    expect(keys.seenRecently('a')).toBe(false);
    now += 120_000;
    keys.seenRecently('e');
    expect(keys.size).toBe(1);
  });
});
