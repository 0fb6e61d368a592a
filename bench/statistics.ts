// The benchmark's order statistics; harness/failover.ts's `stats` is the count app's /stats, not these.

/** The element at rank floor(q·n) of the sorted values, no interpolation: always a measured figure. */
export function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))]! : NaN;
}

/** The upper median of an even count (tools/readme-figures.ts agrees, so its table matches this JSON). */
export const median = (xs: number[]) => quantile(xs, 0.5);
