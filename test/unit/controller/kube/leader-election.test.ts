// The leader's renew deadline on jest's fake clock, with scripted Lease calls: a leader whose API requests
// hang (its node is partitioned) steps down on time, not when a request finally fails.
import { jest } from '@jest/globals';
import type { V1Lease } from '@kubernetes/client-node';
import { LeaderElector } from '../../../../src/controller/kube/leader-election.js';

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

function elector(calls: ReturnType<typeof api>['calls']) {
  return new LeaderElector({
    kc: undefined as never,
    namespace: 'ns',
    name: 'leader',
    identity: 'me',
    log: {
      debug: () => undefined,
      info: () => undefined,
      warn: () => undefined,
      error: () => undefined,
    } as never,
    clock: () => Date.now(),
    api: calls as never,
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
    // The next renewal starts 2 s after the last one came back and has 10 s, as in client-go; not when a
    // hanging request gives up.
    expect(lostAt - lastRenewed).toBe(12_000);
  });

  it('keeps leading while renewals are slow but come back within the deadline (a loaded API server)', async () => {
    const { state, calls } = api();
    const slow = calls.replaceNamespacedLease;
    calls.replaceNamespacedLease = async (args) => {
      await new Promise((r) => setTimeout(r, 8_000));
      return slow(args);
    };
    const e = elector(calls);
    let lost = 0;
    await Promise.all([e.run(() => lost++), jest.advanceTimersByTimeAsync(10)]);
    await jest.advanceTimersByTimeAsync(60_000);
    expect(lost).toBe(0);
    expect(state.writes).toBeGreaterThanOrEqual(6);
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
