// A Clock whose time moves only when a test says so: timers fire in order of their due time as `advance`
// passes it, with the promise jobs they start run before the next one fires.
import type { Clock } from '../src/controller/kube/clock.js';

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
}

export class FakeClock implements Clock {
  private t: number;
  private seq = 0;
  private timers: Timer[] = [];

  /** `start`: the wall-clock time it shows first (the monotonic clock starts at 0). */
  constructor(private readonly start = Date.parse('2026-12-01T00:00:00Z')) {
    this.t = 0;
  }

  now(): number {
    return this.start + this.t;
  }

  monotonic(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): () => void {
    const timer = { at: this.t + Math.max(0, ms), seq: this.seq++, fn };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((x) => x !== timer);
    };
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      if (signal?.aborted) return resolve();
      const cancel = this.setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      const onAbort = () => {
        cancel();
        resolve();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Sets the monotonic time to `ms`, firing nothing: for tests of code that sets no timers. */
  set(ms: number): void {
    this.t = ms;
  }

  /** Timers not fired yet. */
  get pending(): number {
    return this.timers.length;
  }

  /** Moves time on by `ms`, firing every timer due on the way (also those the fired ones set). */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    await settle();
    for (;;) {
      const next = this.timers.filter((x) => x.at <= end).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!next) break;
      this.timers = this.timers.filter((x) => x !== next);
      this.t = Math.max(this.t, next.at);
      next.fn();
      await settle();
    }
    this.t = end;
    await settle();
  }
}

/** Lets the promise jobs queued so far (and those they queue, a few levels deep) run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
  await new Promise<void>((resolve) => setImmediate(resolve));
}
