import { randomUUID } from 'node:crypto';
import type { PodFault, PullReport, ReportBatch } from '../api/index.js';

export interface OutboxOptions {
  /** Reports kept for a controller that is behind; older ones are dropped (and counted as missed). */
  capacity: number;
  /**
   * How long a routine report may wait for others to join it: one answer per batch instead of one per pull
   * keeps the controller's work growing with nodes, not with Pods. Urgent reports go at once.
   */
  batchMs: number;
}

interface Waiter {
  /** The cursor the poll waits beyond: a push matters to it only if it is the first report past it. */
  from: number;
  resolve: () => void;
}

interface Entry {
  cursor: number;
  at: number;
  report?: PullReport;
  fault?: PodFault;
}

/**
 * The helper's pull reports, numbered, for the controller's long poll. The controller keeps the cursor, so a
 * poll that failed is simply repeated; a helper restart shows as a new `boot`.
 */
export class ReportOutbox {
  readonly boot = randomUUID();
  /**
   * Entries `start..` are kept; cursors are contiguous, so the entry after cursor c is at
   * `start + c - firstCursor`. Dropping moves `start` and the array is compacted only now and then, because
   * at 100 Pods a second a splice per push was the helper's largest JS cost.
   */
  private reports: (Entry | undefined)[] = [];
  private start = 0;
  private cursor = 0;
  private urgentCursor = 0;
  private waiters = new Set<Waiter>();

  constructor(private readonly o: OutboxOptions) {}

  add(report: PullReport, urgent = false): void {
    this.push({ report }, urgent);
  }

  /** A failed Pod: the leader acts on it at once. */
  addFault(fault: PodFault): void {
    this.push({ fault }, true);
  }

  private push(entry: { report?: PullReport; fault?: PodFault }, urgent: boolean): void {
    this.cursor++;
    this.reports.push({ cursor: this.cursor, at: Date.now(), ...entry });
    if (this.reports.length - this.start > this.o.capacity) {
      this.reports[this.start++] = undefined;
      if (this.start >= this.o.capacity) {
        this.reports = this.reports.slice(this.start);
        this.start = 0;
      }
    }
    if (urgent) this.urgentCursor = this.cursor;
    // A routine report changes a waiter's due time only if it is the first one past its cursor.
    for (const w of this.waiters) if (urgent || w.from === this.cursor - 1) w.resolve();
  }

  /** The cursor of the oldest report kept; those before it were dropped for lack of room. */
  private firstKept(): number {
    return this.cursor - (this.reports.length - this.start) + 1;
  }

  /** Index of the first kept entry with a cursor above `from`. */
  private indexAfter(from: number): number {
    return this.start + Math.max(0, from + 1 - this.firstKept());
  }

  /** The reports after `after` (all of them if `boot` is not this helper's), once a batch is due. */
  async next(
    after: number,
    boot: string | undefined,
    waitMs: number,
    signal?: AbortSignal,
  ): Promise<ReportBatch> {
    const from = boot === this.boot && after <= this.cursor ? after : 0;
    const deadline = Date.now() + waitMs;
    for (;;) {
      const dueIn = this.dueIn(from);
      if (dueIn <= 0 || Date.now() >= deadline || signal?.aborted) break;
      await this.sleep(from, Math.min(dueIn, deadline - Date.now()), signal);
    }
    return this.batch(from);
  }

  private batch(from: number): ReportBatch {
    const pending = this.reports.slice(this.indexAfter(from)) as Entry[];
    const missed = Math.max(0, this.firstKept() - 1 - from);
    const faults = pending.flatMap((r) => (r.fault ? [r.fault] : []));
    return {
      boot: this.boot,
      cursor: this.cursor,
      reports: pending.flatMap((r) => (r.report ? [r.report] : [])),
      ...(faults.length > 0 ? { faults } : {}),
      ...(missed > 0 ? { missed } : {}),
    };
  }

  /** Milliseconds until the reports after `from` are due; Infinity while there are none. */
  private dueIn(from: number): number {
    if (this.cursor <= from) return Number.POSITIVE_INFINITY;
    if (this.urgentCursor > from) return 0;
    const first = this.reports[this.indexAfter(from)];
    return first ? first.at + this.o.batchMs - Date.now() : 0;
  }

  private sleep(from: number, ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const w: Waiter = {
        from,
        resolve: () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', w.resolve);
          this.waiters.delete(w);
          resolve();
        },
      };
      const timer = setTimeout(w.resolve, Math.max(0, ms));
      signal?.addEventListener('abort', w.resolve, { once: true });
      this.waiters.add(w);
    });
  }
}
