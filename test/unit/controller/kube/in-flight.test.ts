// A stopping leader's work in flight: what it waits for before it releases the Lease.
import { drainWork, trackWork, workInFlight } from '../../../../src/controller/kube/in-flight.js';
import { WorkQueue } from '../../../../src/controller/kube/workqueue.js';

function deferred() {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

describe('work in flight', () => {
  it('counts tracked work until it settles, fulfilled or rejected', async () => {
    const term = new AbortController();
    const a = deferred();
    const b = deferred();
    void trackWork(term.signal, a.promise);
    void trackWork(term.signal, b.promise).catch(() => undefined);
    expect(workInFlight(term.signal)).toBe(2);
    a.resolve();
    b.reject(new Error('no'));
    await expect(drainWork(term.signal, 1000)).resolves.toBe(true);
    expect(workInFlight(term.signal)).toBe(0);
  });

  it('keeps the terms apart, and work without a term is not tracked', async () => {
    const one = new AbortController();
    const two = new AbortController();
    const never = new Promise<void>(() => undefined);
    void trackWork(one.signal, never);
    void trackWork(undefined, never);
    expect(workInFlight(one.signal)).toBe(1);
    expect(workInFlight(two.signal)).toBe(0);
    await expect(drainWork(two.signal, 10)).resolves.toBe(true);
  });

  it('says false when work outlasts the wait, and waits for work started during the drain', async () => {
    const term = new AbortController();
    const first = deferred();
    const second = deferred();
    void trackWork(term.signal, first.promise);
    await expect(drainWork(term.signal, 30)).resolves.toBe(false);
    const drained = drainWork(term.signal, 2000);
    let done = false;
    void drained.then(() => (done = true));
    // The first ends, but only after a second began: the drain goes on.
    void trackWork(term.signal, second.promise);
    first.resolve();
    await new Promise((r) => setTimeout(r, 20));
    expect(done).toBe(false);
    second.resolve();
    await expect(drained).resolves.toBe(true);
  });

  it('a queue run in progress when the term ends is waited for; nothing new starts', async () => {
    const term = new AbortController();
    const push = deferred();
    const runs: string[] = [];
    const q = new WorkQueue(
      async (key) => {
        runs.push(key);
        if (key === 'restore') await push.promise;
      },
      { concurrency: 1, signal: term.signal },
    );
    q.add('restore');
    q.add('next'); // waits behind the running restore
    await new Promise((r) => setTimeout(r, 10));
    term.abort();
    let drained = false;
    const draining = drainWork(term.signal, 2000).then((d) => (drained = d));
    await new Promise((r) => setTimeout(r, 20));
    expect(drained).toBe(false);
    push.resolve();
    await draining;
    expect(drained).toBe(true);
    expect(runs).toEqual(['restore']);
  });
});
