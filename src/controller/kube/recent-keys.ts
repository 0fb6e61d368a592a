import { systemClock, type Clock } from './clock.js';

/**
 * Keys seen within a time window, with a hard cap, for de-duplication (Events, log lines). Entries are kept
 * in the order they were first seen, so expired ones are always at the front and leave in O(1) each; past the
 * cap the oldest leave first. Nothing grows without bound, and nothing recent is forgotten wholesale.
 */
export class RecentKeys {
  private seen = new Map<string, number>();

  constructor(
    private readonly windowMs: number,
    private readonly max: number,
    private readonly clock: Clock = systemClock,
  ) {}

  /** True if `key` was seen within the window (and is not recorded again); otherwise records it. */
  seenRecently(key: string): boolean {
    const now = this.clock.monotonic();
    for (const [k, at] of this.seen) {
      if (at > now - this.windowMs) break;
      this.seen.delete(k);
    }
    if (this.seen.has(key)) return true;
    while (this.seen.size >= this.max) this.seen.delete(this.seen.keys().next().value!);
    this.seen.set(key, now);
    return false;
  }

  get size(): number {
    return this.seen.size;
  }
}
