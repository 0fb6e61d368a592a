// The leader's renew deadline on jest's fake clock, with scripted Lease calls: a leader whose API requests
// hang (its node is partitioned) steps down on time, not when a request finally fails.
import { systemClock } from '../../../../src/controller/kube/clock.js';
import { jest } from '@jest/globals';
import type { V1Lease } from '@kubernetes/client-node';
import {
  LEADER_ELECTION_DEFAULTS,
  LeaderElector,
  leaderElectionTimingsError,
} from '../../../../src/controller/kube/leader-election.js';

/** Lease calls that answer at once, or never while `hang` is set. */
function api() {
  const state = { hang: false, lease: undefined as V1Lease | undefined, writes: 0 };
  const never = () => new Promise<never>(() => undefined);
  const calls = {
    readNamespacedLease: async () => {
      if (state.hang) return never();
      if (!state.lease) throw Object.assign(new Error('not found'), { code: 404 });
      return structuredClone(state.lease);
    },
    createNamespacedLease: async ({ body }: { body: V1Lease }) => {
      if (state.hang) return never();
      state.writes++;
      return (state.lease = body);
    },
    replaceNamespacedLease: async ({ body }: { body: V1Lease }) => {
      if (state.hang) return never();
      state.writes++;
      return (state.lease = body);
    },
  };
  return { state, calls };
}

/** client-go's timings (15 s lease, 10 s renew deadline, 2 s retry) unless told otherwise. */
function elector(
  calls: ReturnType<typeof api>['calls'],
  timings = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 },
) {
  return new LeaderElector({
    ...timings,
    namespace: 'ns',
    name: 'leader',
    identity: 'me',
    log: { info: () => undefined, warn: () => undefined, error: () => undefined },
    clock: { ...systemClock, monotonic: () => Date.now() },
    api: calls,
  });
}

beforeEach(() => jest.useFakeTimers({ now: 1_000_000 }));
afterEach(() => jest.useRealTimers());

describe('LeaderElector', () => {
  it('leads, renews every retry period, and steps down within the renew deadline once requests hang', async () => {
    const { state, calls } = api();
    const e = elector(calls);
    let lostAt = 0;
    const leading = e.run(() => (lostAt = Date.now()));
    await jest.advanceTimersByTimeAsync(10);
    await leading;
    await jest.advanceTimersByTimeAsync(6_000);
    expect(state.writes).toBe(4); // the create, then a renewal every 2 s
    const lastRenewed = 1_000_000 + 6_000;
    state.hang = true;
    await jest.advanceTimersByTimeAsync(60_000);
    expect(lostAt).toBeGreaterThan(0);
    // 10 s from the start of the last renewal that succeeded, not when a hanging request gives up.
    expect(lostAt - lastRenewed).toBe(10_000);
  });

  it('keeps leading while renewals are slow but come back with time to spare (a loaded API server)', async () => {
    const { state, calls } = api();
    const slow = calls.replaceNamespacedLease;
    calls.replaceNamespacedLease = async (args) => {
      await new Promise((r) => setTimeout(r, 4_000));
      return slow(args);
    };
    const e = elector(calls);
    let lost = 0;
    await Promise.all([e.run(() => lost++), jest.advanceTimersByTimeAsync(10)]);
    await jest.advanceTimersByTimeAsync(60_000);
    expect(lost).toBe(0);
    expect(state.writes).toBeGreaterThanOrEqual(14);
    expect(e.isLeading()).toBe(true);
  });

  it('stops acting within the renew deadline of the start of its last renewal, even when that renewal was slow', async () => {
    // Each write lands the moment it is sent (a standby may see it then) and is answered 7 s later. Timed
    // from the answer plus a retry period, as client-go does, the leader would act until 7 + 2 + 10 = 19 s
    // after a write a standby expires 15 s after: 4 s of two leaders.
    const { calls } = api();
    const slow = calls.replaceNamespacedLease;
    const sentAt: number[] = [];
    calls.replaceNamespacedLease = async (args) => {
      sentAt.push(Date.now());
      const done = slow(args);
      await new Promise((r) => setTimeout(r, 7_000));
      return done;
    };
    const e = elector(calls);
    let lostAt = 0;
    let leadingAfterDeadline = false;
    await Promise.all([e.run(() => (lostAt = Date.now())), jest.advanceTimersByTimeAsync(10)]);
    for (let t = 0; t < 60_000 && !lostAt; t += 100) {
      await jest.advanceTimersByTimeAsync(100);
      const lastSent = sentAt.filter((at) => at + 7_000 <= Date.now()).at(-1);
      if (lastSent !== undefined && e.isLeading() && Date.now() >= lastSent + 10_000)
        leadingAfterDeadline = true;
    }
    expect(lostAt).toBeGreaterThan(0);
    expect(leadingAfterDeadline).toBe(false);
    expect(e.isLeading()).toBe(false);
    // The first renewal was sent at 2 s and answered at 9 s; the next, sent then, could not be answered by 12 s.
    expect(lostAt - 1_000_000).toBe(12_000);
  });

  it('refuses timings where a leader could still act once a standby may take over', () => {
    expect(leaderElectionTimingsError(LEADER_ELECTION_DEFAULTS)).toBeUndefined();
    expect(
      leaderElectionTimingsError({ leaseDurationMs: 5_000, renewDeadlineMs: 5_000, retryPeriodMs: 1_000 }),
    ).toMatch(
      /renew deadline 5000 ms, lease duration 5000 ms; allowed: retry period < renew deadline <= lease duration - max\(1 s, 20 % of it\)/,
    );
    expect(
      leaderElectionTimingsError({ leaseDurationMs: 5_000, renewDeadlineMs: 900, retryPeriodMs: 1_000 }),
    ).toMatch(/retry period 1000 ms/);
    expect(
      leaderElectionTimingsError({ leaseDurationMs: 4_500, renewDeadlineMs: 3_000, retryPeriodMs: 1_000 }),
    ).toMatch(/whole seconds/);
    expect(() =>
      elector(api().calls, { leaseDurationMs: 3_000, renewDeadlineMs: 4_000, retryPeriodMs: 1_000 }),
    ).toThrow(/lease duration 3000 ms/);
  });

  it('does not lead again after stepping down, even if a late request lands', async () => {
    const { state, calls } = api();
    const e = elector(calls);
    let lost = 0;
    await Promise.all([e.run(() => lost++), jest.advanceTimersByTimeAsync(10)]);
    state.hang = true;
    await jest.advanceTimersByTimeAsync(20_000);
    state.hang = false;
    const writes = state.writes;
    await jest.advanceTimersByTimeAsync(20_000);
    expect(lost).toBe(1);
    expect(state.writes).toBe(writes);
  });

  it('a standby takes over the moment a hold it saw runs out, not up to a retry period later', async () => {
    const { state, calls } = api();
    state.lease = {
      metadata: { name: 'leader', namespace: 'ns' },
      spec: { holderIdentity: 'other', leaseDurationSeconds: 15, renewTime: new Date(), leaseTransitions: 0 },
    };
    const e = elector(calls);
    let led = false;
    void e.run(() => undefined).then(() => (led = true));
    // Seen at 0 and every 2 s after, unchanged (its holder is gone): expired at 15 s, between two retries.
    await jest.advanceTimersByTimeAsync(14_990);
    expect(led).toBe(false);
    await jest.advanceTimersByTimeAsync(20);
    expect(led).toBe(true);
    expect(state.lease?.spec?.holderIdentity).toBe('me');
  });

  it('a standby whose Lease read hangs tries again after the deadline and takes a free Lease', async () => {
    const { state, calls } = api();
    state.hang = true;
    const e = elector(calls);
    let led = false;
    void e.run(() => undefined).then(() => (led = true));
    await jest.advanceTimersByTimeAsync(5_000);
    state.hang = false;
    await jest.advanceTimersByTimeAsync(10_000);
    expect(led).toBe(true);
    await e.release();
    expect(state.lease?.spec?.holderIdentity).toBeUndefined();
  });
});
