// When status is written, on a FakeClock with a recording patch function instead of the API server.
import type { PullStatePolicyStatus } from '../../../../src/api/index.js';
import { StatusWriter } from '../../../../src/controller/policies/status-writer.js';
import { createLogger } from '../../../../src/runtime/logger.js';
import { FakeClock } from '../../../../harness/fake-clock.js';

let status: PullStatePolicyStatus;
let computed: number;
let writes: { at: number; status: PullStatePolicyStatus }[];
let fail: number | undefined;
let writer: StatusWriter;
let term: AbortController;
let clock: FakeClock;

const ready = (s: 'True' | 'False') => [
  { type: 'Ready', status: s, reason: 'X', message: 'm', lastTransitionTime: '2026-11-24T00:00:00Z' },
];

beforeEach(() => {
  clock = new FakeClock();
  status = { protectedPods: 1, conditions: ready('True') };
  computed = 0;
  writes = [];
  fail = undefined;
  term = new AbortController();
  writer = new StatusWriter(
    async (_ns, _name, s) => {
      if (fail) throw Object.assign(new Error('refused'), { code: fail });
      writes.push({ at: clock.monotonic(), status: s });
    },
    () => {
      computed++;
      return { status: { ...status }, periodMs: 1000 };
    },
    { statusWrites: { inc: () => undefined } },
    createLogger('test', 'error'),
    { signal: term.signal, clock },
  );
});
afterEach(() => term.abort());

describe('StatusWriter', () => {
  it('computes a burst of requests once and writes the first status at once', async () => {
    for (let i = 0; i < 50; i++) writer.request('ns/p');
    await clock.advance(150);
    expect(computed).toBe(1);
    expect(writes.map((w) => w.at)).toEqual([100]);
  });

  it('writes routine changes at most once per period (5 s floor), condition changes at once', async () => {
    writer.request('ns/p');
    await clock.advance(150);
    status = { ...status, protectedPods: 2 };
    writer.request('ns/p');
    await clock.advance(1000);
    expect(writes).toHaveLength(1);
    await clock.advance(4000);
    expect(writes.map((w) => w.at)).toEqual([100, 5100]);
    status = { ...status, conditions: ready('False') };
    writer.request('ns/p');
    await clock.advance(150);
    expect(writes.map((w) => w.at)).toEqual([100, 5100, 5250]);
    writer.request('ns/p');
    await clock.advance(10_000);
    expect(writes).toHaveLength(3); // nothing changed: nothing written
  });

  it('writes a new observedGeneration at once (a spec edit the conditions do not show)', async () => {
    status = { ...status, observedGeneration: 1 };
    writer.request('ns/p');
    await clock.advance(150);
    status = { ...status, observedGeneration: 2 };
    writer.request('ns/p');
    await clock.advance(150);
    expect(writes.map((w) => [w.at, w.status.observedGeneration])).toEqual([
      [100, 1],
      [250, 2],
    ]);
  });

  it('writes a new condition message alone (the failing Pods named) only with the routine writes', async () => {
    writer.request('ns/p');
    await clock.advance(150);
    for (let i = 0; i < 20; i++) {
      status = { ...status, conditions: [{ ...ready('True')[0]!, message: `pod ${i} failing` }] };
      writer.request('ns/p');
      await clock.advance(250);
    }
    expect(writes.map((w) => w.at)).toEqual([100, 5100]);
    expect(writes[1]!.status.conditions?.[0]?.message).toMatch(/failing/);
  });

  it('retries a failed write after 2 s', async () => {
    fail = 500;
    writer.request('ns/p');
    await clock.advance(150);
    expect(writes).toHaveLength(0);
    fail = undefined;
    await clock.advance(2000);
    expect(writes.map((w) => w.at)).toEqual([2100]);
  });

  it('retries with back-off (2 s doubling) and writes nothing once the term ends', async () => {
    fail = 500;
    writer.request('ns/p');
    await clock.advance(150 + 2000 + 4000);
    expect(writes).toHaveLength(0);
    fail = undefined;
    await clock.advance(8000);
    expect(writes.map((w) => w.at)).toEqual([14_100]);
    term.abort();
    status = { ...status, conditions: ready('False') };
    writer.request('ns/p');
    await clock.advance(60_000);
    expect(writes).toHaveLength(1);
  });

  it('forgets a deleted policy: a 404 is not retried', async () => {
    fail = 404;
    writer.request('ns/p');
    await clock.advance(150);
    fail = undefined;
    await clock.advance(60_000);
    expect(writes).toHaveLength(0);
  });

  it('writes again a status someone replaced, within the period, and at once only for other conditions', async () => {
    writer.request('ns/p');
    await clock.advance(150);
    expect(writes).toHaveLength(1);
    // The cache still shows the status before the write (or someone replaced a count): not rewritten at once.
    writer.observe('ns/p', { protectedPods: 7, conditions: ready('True') });
    await clock.advance(1000);
    expect(writes).toHaveLength(1);
    await clock.advance(4500);
    expect(writes.map((w) => w.at)).toEqual([100, 5100]);
    expect(writes[1]!.status.protectedPods).toBe(1);
    // What was written, spelled the API's way (keys in its order): nothing to do.
    writer.observe('ns/p', { conditions: ready('True'), protectedPods: 1 });
    await clock.advance(10_000);
    expect(writes).toHaveLength(2);
    // Conditions replaced: written again at once.
    writer.observe('ns/p', { protectedPods: 1, conditions: ready('False') });
    await clock.advance(150);
    expect(writes).toHaveLength(3);
    expect(writes[2]!.status.conditions).toEqual(ready('True'));
  });
});
