import { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from '../../runtime/backoff.js';
import { systemClock, type Clock } from './clock.js';
import { trackWork } from './in-flight.js';

export type ReconcileResult = void | { requeueAfterMs: number };

export interface WorkQueueOptions {
  /** Keys processed at the same time; one key is never processed twice at once. */
  concurrency: number;
  backoff?: BackoffOptions;
  onDepth?: (depth: number) => void;
  onError?: (key: string, err: unknown, retryInMs: number) => void;
  /** Collect keys but run nothing until `resume()`: reconcilers wait for the caches they read. */
  paused?: boolean;
  /**
   * Aborted, the queue stops for good (the leadership term or the process ended). Runs in progress count as
   * the term's work in flight (see in-flight.ts) until they end.
   */
  signal?: AbortSignal;
  clock?: Clock;
}

/**
 * A keyed, de-duplicating work queue in the manner of client-go's rate-limited workqueue: adding a key that
 * is already waiting is a no-op; a key added while it is being processed runs once more afterwards; a
 * failing key is retried with per-key exponential backoff, and forgotten on success.
 */
export class WorkQueue {
  private queue: string[] = [];
  private queued = new Set<string>();
  private active = new Set<string>();
  private dirtyWhileActive = new Set<string>();
  private failures = new Map<string, number>();
  private timers = new Map<string, { cancel: () => void; at: number }>();
  private readonly clock: Clock;
  private running = 0;
  private stopped = false;
  private paused: boolean;

  constructor(
    private readonly handler: (key: string) => Promise<ReconcileResult>,
    private readonly o: WorkQueueOptions,
  ) {
    this.paused = o.paused ?? false;
    this.clock = o.clock ?? systemClock;
    if (o.signal?.aborted) this.stop();
    else o.signal?.addEventListener('abort', () => this.stop(), { once: true });
  }

  resume(): void {
    this.paused = false;
    this.pump();
  }

  add(key: string): void {
    if (this.stopped) return;
    if (this.active.has(key)) {
      this.dirtyWhileActive.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.queue.push(key);
    this.o.onDepth?.(this.queue.length);
    this.pump();
  }

  /** Adds the key after `ms`; of several pending times for a key the earliest wins, as in client-go. */
  addAfter(key: string, ms: number): void {
    if (this.stopped) return;
    if (ms <= 0) return this.add(key);
    const at = this.clock.monotonic() + ms;
    const pending = this.timers.get(key);
    if (pending && pending.at <= at) return;
    pending?.cancel();
    const cancel = this.clock.setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms);
    this.timers.set(key, { cancel, at });
  }

  depth(): number {
    return this.queue.length;
  }

  /** Drops a key that needs no more work: its pending retry and its place in the queue (not a running call). */
  forget(key: string): void {
    this.timers.get(key)?.cancel();
    this.timers.delete(key);
    this.failures.delete(key);
    this.dirtyWhileActive.delete(key);
    if (this.queued.delete(key)) this.queue = this.queue.filter((k) => k !== key);
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) t.cancel();
    this.timers.clear();
    this.queue = [];
    this.queued.clear();
  }

  private pump(): void {
    while (!this.stopped && !this.paused && this.running < this.o.concurrency && this.queue.length > 0) {
      const key = this.queue.shift()!;
      this.queued.delete(key);
      this.active.add(key);
      this.running++;
      this.o.onDepth?.(this.queue.length);
      void trackWork(this.o.signal, this.process(key));
    }
  }

  private async process(key: string): Promise<void> {
    let retryIn: number | undefined;
    try {
      const result = await this.handler(key);
      this.failures.delete(key);
      if (result && result.requeueAfterMs >= 0) retryIn = result.requeueAfterMs;
    } catch (err) {
      const n = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, n);
      retryIn = backoffDelay(n, this.o.backoff ?? DEFAULT_BACKOFF);
      this.o.onError?.(key, err, retryIn);
    } finally {
      this.active.delete(key);
      this.running--;
    }
    if (this.dirtyWhileActive.delete(key)) this.add(key);
    else if (retryIn !== undefined) this.addAfter(key, retryIn);
    this.pump();
  }
}
