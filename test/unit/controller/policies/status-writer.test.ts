// When status is written, on a fake clock with a recording patch function instead of the API server.
import { jest } from '@jest/globals';
import type { PullStatePolicyStatus } from '../../../../src/api/index.js';
import { StatusWriter } from '../../../../src/controller/policies/status-writer.js';
import { createLogger } from '../../../../src/runtime/logger.js';

let status: PullStatePolicyStatus;
let computed: number;
let writes: { at: number; status: PullStatePolicyStatus }[];
let fail: number | undefined;
let writer: StatusWriter;
let term: AbortController;
const t0 = 1_000_000;

const ready = (s: 'True' | 'False') => [
  { type: 'Ready', status: s, reason: 'X', message: 'm', lastTransitionTime: '2026-11-24T00:00:00Z' },
];

beforeEach(() => {
  jest.useFakeTimers({ now: t0 });
  status = { protectedPods: 1, conditions: ready('True') };
  computed = 0;
  writes = [];
  fail = undefined;
  term = new AbortController();
  writer = new StatusWriter(
    async (_ns, _name, s) => {
      if (fail) throw Object.assign(new Error('refused'), { code: fail });
      writes.push({ at: Date.now() - t0, status: s });
    },
    () => {
      computed++;
      return { status: { ...status }, periodMs: 1000 };
    },
    { statusWrites: { inc: () => undefined } },
    createLogger('test', 'error'),
    { signal: term.signal },
  );
});
afterEach(() => jest.useRealTimers());

describe('StatusWriter', () => {
  it('computes a burst of requests once and writes the first status at once', async () => {
    for (let i = 0; i < 50; i++) writer.request('ns/p');
    await jest.advanceTimersByTimeAsync(150);
    expect(computed).toBe(1);
    expect(writes.map((w) => w.at)).toEqual([100]);
  });

  it('writes routine changes at most once per period (5 s floor), condition changes at once', async () => {
    writer.request('ns/p');
    await jest.advanceTimersByTimeAsync(150);
    status = { ...status, protectedPods: 2 };
    writer.request('ns/p');
    await jest.advanceTimersByTimeAsync(1000);
    expect(writes).toHaveLength(1);
    await jest.advanceTimersByTimeAsync(4000);
    expect(writes.map((w) => w.at)).toEqual([100, 5100]);
    status = { ...status, conditions: ready('False') };
    writer.request('ns/p');
    await jest.advanceTimersByTimeAsync(150);
    expect(writes.map((w) => w.at)).toEqual([100, 5100, 5250]);
    writer.request('ns/p');
    await jest.advanceTimersByTimeAsync(10_000);
    expect(writes).toHaveLength(3); // nothing changed: nothing written
  });

  it('writes a new observedGeneration at once (a spec edit the conditions do not show)', async () => {
    status = { ...status, observedGeneration: 1 };
    writer.request('ns/p');
    await jest.advanceTimersByTimeAsync(150);
    status = { ...status, observedGeneration: 2 };
    writer.request('ns/p');
    await jest.advanceTimersByTimeAsync(150);
    expect(writes.map((w) => [w.at, w.status.observedGeneration])).toEqual([
      [100, 1],
      [250, 2],
    ]);
  });

  it('writes a new condition message alone (the failing Pods named) only with the routine writes', async () => {
    writer.request('ns/p');
    await jest.advanceTimersByTimeAsync(150);
    for (let i = 0; i < 20; i++) {
      status = { ...status, conditions: [{ ...ready('True')[0]!, message: `pod ${i} failing` }] };
      writer.request('ns/p');
      await jest.advanceTimersByTimeAsync(250);
    }
    expect(writes.map((w) => w.at)).toEqual([100, 5100]);
    expect(writes[1]!.status.conditions?.[0]?.message).toMatch(/failing/);
  });

  it('retries a failed write after 2 s', async () => {
    fail = 500;
    writer.request('ns/p');
    await jest.advanceTimersByTimeAsync(150);
    expect(writes).toHaveLength(0);
    fail = undefined;
    await jest.advanceTimersByTimeAsync(2000);
    expect(writes.map((w) => w.at)).toEqual([2100]);
  });

  it('retries with back-off (2 s doubling) and writes nothing once the term ends', async () => {
    fail = 500;
    writer.request('ns/p');
    await jest.advanceTimersByTimeAsync(150 + 2000 + 4000);
    expect(writes).toHaveLength(0);
    fail = undefined;
    await jest.advanceTimersByTimeAsync(8000);
    expect(writes.map((w) => w.at)).toEqual([14_100]);
    term.abort();
    status = { ...status, conditions: ready('False') };
    writer.request('ns/p');
    await jest.advanceTimersByTimeAsync(60_000);
    expect(writes).toHaveLength(1);
  });

  it('forgets a deleted policy: a 404 is not retried', async () => {
    fail = 404;
    writer.request('ns/p');
    await jest.advanceTimersByTimeAsync(150);
    fail = undefined;
    await jest.advanceTimersByTimeAsync(60_000);
    expect(writes).toHaveLength(0);
  });

  it('writes again a status someone replaced, within the period, and at once only for other conditions', async () => {
    writer.request('ns/p');
    await jest.advanceTimersByTimeAsync(150);
    expect(writes).toHaveLength(1);
    // The cache still shows the status before the write (or someone replaced a count): not rewritten at once.
    writer.observe('ns/p', { protectedPods: 7, conditions: ready('True') });
    await jest.advanceTimersByTimeAsync(1000);
    expect(writes).toHaveLength(1);
    await jest.advanceTimersByTimeAsync(4500);
    expect(writes.map((w) => w.at)).toEqual([100, 5100]);
    expect(writes[1]!.status.protectedPods).toBe(1);
    // What was written, spelled the API's way (keys in its order): nothing to do.
    writer.observe('ns/p', { conditions: ready('True'), protectedPods: 1 });
    await jest.advanceTimersByTimeAsync(10_000);
    expect(writes).toHaveLength(2);
    // Conditions replaced: written again at once.
    writer.observe('ns/p', { protectedPods: 1, conditions: ready('False') });
    await jest.advanceTimersByTimeAsync(150);
    expect(writes).toHaveLength(3);
    expect(writes[2]!.status.conditions).toEqual(ready('True'));
  });
});
