// The outbox's batching and cursor rules on a fake clock (jest's modern timers fake Date.now and setTimeout).
import { jest } from '@jest/globals';
import type { PullReport } from '../../../src/api/index.js';
import { ReportOutbox } from '../../../src/helper/report-outbox.js';

const report = (sequence: number, ok = true): PullReport =>
  ok
    ? {
        ok: true,
        namespace: 'apps',
        podUID: 'u1',
        sequence,
        targets: ['n2'],
        pulledAt: sequence,
        sizeBytes: 1,
        digest: 'sha256:x',
        contentType: 'application/json',
        stored: [],
        failed: [],
        durationMs: 1,
      }
    : {
        ok: false,
        reason: 'Restarted',
        message: 'new process',
        namespace: 'apps',
        podUID: 'u1',
        sequence,
        targets: ['n2'],
        pulledAt: sequence,
        durationMs: 1,
      };

beforeEach(() => jest.useFakeTimers({ now: 1_000_000 }));
afterEach(() => jest.useRealTimers());

/** Resolves `p` while advancing the fake clock in small steps; returns its value and the time it took. */
async function settle<T>(p: Promise<T>, stepMs = 10, maxMs = 120_000): Promise<{ value: T; ms: number }> {
  const start = Date.now();
  let done = false;
  let value!: T;
  void p.then((v) => {
    done = true;
    value = v;
  });
  while (!done && Date.now() - start <= maxMs) await jest.advanceTimersByTimeAsync(stepMs);
  if (!done) throw new Error('did not settle');
  return { value, ms: Date.now() - start };
}

describe('ReportOutbox', () => {
  it('holds a routine report for the batch window so later ones join it', async () => {
    const box = new ReportOutbox({ capacity: 100, batchMs: 200 });
    const first = await settle(box.next(0, undefined, 0));
    const poll = box.next(first.value.cursor, box.boot, 20_000);
    box.add(report(1));
    await jest.advanceTimersByTimeAsync(50);
    box.add(report(2));
    const { value, ms } = await settle(poll);
    expect(value.reports.map((r) => r.sequence)).toEqual([1, 2]);
    expect(ms).toBeGreaterThanOrEqual(140);
    expect(ms).toBeLessThanOrEqual(220);
    expect(value.cursor).toBe(2);
  });

  it('answers at once with an urgent report (a restart), together with the routine ones before it', async () => {
    const box = new ReportOutbox({ capacity: 100, batchMs: 10_000 });
    box.add(report(1));
    const poll = box.next(0, box.boot, 20_000);
    box.add(report(2, false), true);
    const { value, ms } = await settle(poll, 1);
    expect(ms).toBeLessThan(10);
    expect(value.reports.map((r) => r.ok)).toEqual([true, false]);
  });

  it('answers empty when nothing happened within the wait', async () => {
    const box = new ReportOutbox({ capacity: 100, batchMs: 200 });
    const { value, ms } = await settle(box.next(0, box.boot, 5000), 100);
    expect(value.reports).toEqual([]);
    expect(ms).toBeGreaterThanOrEqual(5000);
  });

  it('sends everything again to a caller that knows another boot, and counts what it dropped for lack of room', async () => {
    const box = new ReportOutbox({ capacity: 3, batchMs: 0 });
    for (let i = 1; i <= 5; i++) box.add(report(i));
    const fromOtherBoot = await settle(box.next(4, 'an-earlier-helper', 1000));
    expect(fromOtherBoot.value.reports.map((r) => r.sequence)).toEqual([3, 4, 5]);
    expect(fromOtherBoot.value.missed).toBe(2);
    const current = await settle(box.next(4, box.boot, 1000));
    expect(current.value.reports.map((r) => r.sequence)).toEqual([5]);
    expect(current.value.missed).toBeUndefined();
  });

  it('keeps exactly the last `capacity` reports across its compactions, and finds the ones after any cursor', async () => {
    const box = new ReportOutbox({ capacity: 10, batchMs: 0 });
    for (let i = 1; i <= 37; i++) {
      box.add(report(i));
      const all = await settle(box.next(0, box.boot, 0));
      const kept = all.value.reports.map((r) => r.sequence);
      expect(kept).toEqual(Array.from({ length: Math.min(i, 10) }, (_, k) => Math.max(1, i - 9) + k));
      expect(all.value.missed ?? 0).toBe(Math.max(0, i - 10));
    }
    const after30 = await settle(box.next(30, box.boot, 0));
    expect(after30.value.reports.map((r) => r.sequence)).toEqual([31, 32, 33, 34, 35, 36, 37]);
    expect(after30.value.missed).toBeUndefined();
    const after20 = await settle(box.next(20, box.boot, 0));
    expect(after20.value.reports.map((r) => r.sequence)).toEqual([28, 29, 30, 31, 32, 33, 34, 35, 36, 37]);
    expect(after20.value.missed).toBe(7);
  });

  it('wakes a waiting poll for the first report past its cursor, and holds it for the batch window', async () => {
    const box = new ReportOutbox({ capacity: 100, batchMs: 300 });
    box.add(report(1));
    const caughtUp = box.next(1, box.boot, 20_000);
    await jest.advanceTimersByTimeAsync(1000);
    box.add(report(2));
    const { value, ms } = await settle(caughtUp);
    expect(value.reports.map((r) => r.sequence)).toEqual([2]);
    expect(ms).toBeGreaterThanOrEqual(290);
    expect(ms).toBeLessThanOrEqual(320);
  });

  it('ends a poll whose caller went away', async () => {
    const box = new ReportOutbox({ capacity: 3, batchMs: 0 });
    const gone = new AbortController();
    const poll = box.next(0, box.boot, 60_000, gone.signal);
    gone.abort();
    const { ms } = await settle(poll, 1);
    expect(ms).toBeLessThan(5);
  });
});
