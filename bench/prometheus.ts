// Readings of the operator's /metrics text between two scrapes, for the scale scenario.

/** Prometheus text: the value of a sample line `name{labels} value`. */
export function metric(text: string, name: string): number {
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
}

/** A quantile of a histogram over the interval between two scrapes (the bucket's upper bound). */
export function histogramQuantile(a: string, b: string, name: string, q: number): number {
  const buckets = (text: string) =>
    [...text.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\S+)$`, 'gm'))].map((m) => ({
      le: m[1] === '+Inf' ? Infinity : Number(m[1]),
      n: Number(m[2]),
    }));
  const before = buckets(a);
  const after = buckets(b).map((x, i) => ({ le: x.le, n: x.n - (before[i]?.n ?? 0) }));
  const total = after[after.length - 1]?.n ?? 0;
  return after.find((x) => x.n >= q * total)?.le ?? NaN;
}
