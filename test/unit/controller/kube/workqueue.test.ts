// The keyed, de-duplicating work queue.
import { FakeClock } from '../../../../harness/fake-clock.js';
import { WorkQueue } from '../../../../src/controller/kube/workqueue.js';

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

  describe('on a fake clock', () => {
    let clock: FakeClock;
    beforeEach(() => (clock = new FakeClock()));

    it('runs a key again after the delay its handler returns; the earliest of several delays wins', async () => {
      const runs: number[] = [];
      const q = new WorkQueue(
        async () => {
          runs.push(clock.monotonic());
          return runs.length < 3 ? { requeueAfterMs: 1000 } : undefined;
        },
        { concurrency: 1, clock },
      );
      q.add('k');
      await clock.advance(2500);
      expect(runs).toEqual([0, 1000, 2000]);
      q.addAfter('k', 5000);
      q.addAfter('k', 300); // earlier: replaces the 5 s one
      q.addAfter('k', 4000); // later than the pending one: ignored
      await clock.advance(10_000);
      expect(runs).toEqual([0, 1000, 2000, 2800]);
      q.stop();
    });

    it('stops for good when its signal aborts, pending retries included', async () => {
      const term = new AbortController();
      let runs = 0;
      const q = new WorkQueue(
        async () => {
          runs++;
          throw new Error('again');
        },
        { concurrency: 1, signal: term.signal, backoff: { baseMs: 100, maxMs: 100 }, clock },
      );
      q.add('k');
      await clock.advance(1050);
      expect(runs).toBe(11);
      term.abort();
      q.add('k');
      await clock.advance(10_000);
      expect(runs).toBe(11);
      expect(q.isStopped).toBe(true);
    });

    it('forgets a key: its pending retry and its place in the queue', async () => {
      const runs: string[] = [];
      const q = new WorkQueue(async (key) => void runs.push(key), { concurrency: 1, paused: true, clock });
      q.add('a');
      q.add('b');
      q.addAfter('c', 100);
      q.forget('a');
      q.forget('c');
      q.resume();
      await clock.advance(1000);
      expect(runs).toEqual(['b']);
      q.stop();
    });
  });
});
