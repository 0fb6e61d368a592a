// The keyed, de-duplicating work queue.
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
});
