/** Per-key exponential backoff, client-go's defaults: 5 ms doubling up to 1000 s. */
export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 5, maxMs: 1_000_000 };

/** Delay before retry number `failures` (1 = first retry). */
export function backoffDelay(failures: number, o: BackoffOptions = DEFAULT_BACKOFF): number {
  if (failures <= 0) return 0;
  const exp = Math.min(failures - 1, 60);
  return Math.min(o.maxMs, o.baseMs * 2 ** exp);
}

/** A delay spread by ±fraction so timers started together do not stay in lock-step. */
export function jittered(ms: number, fraction: number, random: () => number = Math.random): number {
  return Math.max(0, Math.round(ms * (1 + fraction * (2 * random() - 1))));
}
