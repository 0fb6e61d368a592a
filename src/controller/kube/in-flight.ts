import { systemClock, type Clock } from './clock.js';

/**
 * The work a leadership term has in flight, kept per term signal: queue runs and the few fire-and-forget
 * actions (a Pod deletion, a node's fencing). A leader that stops aborts its term first, so nothing new
 * starts, then waits here until what runs has ended, and only then releases the Lease. client-go says it
 * ("ensure all code guarded by this lease has successfully completed prior to cancelling the context"); for
 * this operator it is the difference between a restore that ends before the next leader starts its own and
 * one that lands in an app the next leader restored and let through its gate already.
 *
 * Keyed by the signal every component already receives, so no component needs another dependency.
 */
const work = new WeakMap<AbortSignal, Set<Promise<void>>>();

/** Counts `p` as work of the term `signal` belongs to until it settles; returns `p`. */
export function trackWork<T>(signal: AbortSignal | undefined, p: Promise<T>): Promise<T> {
  if (!signal) return p;
  let running = work.get(signal);
  if (!running) work.set(signal, (running = new Set()));
  const set = running;
  const settled: Promise<void> = p.then(
    () => void set.delete(settled),
    () => void set.delete(settled),
  );
  set.add(settled);
  return p;
}

/** How many tracked pieces of work of this term have not settled yet. */
export function workInFlight(signal: AbortSignal): number {
  return work.get(signal)?.size ?? 0;
}

/**
 * Resolves true once no tracked work of the term is left (work started meanwhile included), false if some is
 * still running after `timeoutMs`.
 */
export async function drainWork(
  signal: AbortSignal,
  timeoutMs: number,
  clock: Clock = systemClock,
): Promise<boolean> {
  const running = work.get(signal);
  const deadline = clock.monotonic() + timeoutMs;
  while (running && running.size > 0) {
    const left = deadline - clock.monotonic();
    if (left <= 0) return false;
    const waited = new AbortController();
    await Promise.race([Promise.all([...running]), clock.sleep(left, waited.signal)]);
    waited.abort();
  }
  return true;
}
