/**
 * The controller's one clock. Every component that reads the time or waits takes one (`systemClock` unless a
 * test passes `FakeClock` from harness/fake-clock.ts), so no test patches globals to move time.
 */
export interface Clock {
  /** Milliseconds since the epoch: timestamps, and durations that may follow the wall clock's steps. */
  now(): number;
  /** Milliseconds of a clock that never steps: deadlines and expiries (leases, fences). */
  monotonic(): number;
  /** Calls `fn` after `ms`; returns what cancels it. A pending timer never keeps the process alive. */
  setTimeout(fn: () => void, ms: number): () => void;
  /** Resolves after `ms`, or at once when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimeout(fn, ms) {
    const timer = setTimeout(fn, ms);
    timer.unref();
    return () => clearTimeout(timer);
  },
  sleep(ms, signal) {
    return new Promise<void>((resolve) => {
      if (signal?.aborted) return resolve();
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener('abort', done, { once: true });
    });
  },
};
