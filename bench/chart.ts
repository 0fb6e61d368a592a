// .local/bench/failover.svg, written when a run has both failover and baseline (docs/benchmark-failover.svg
// is one such run's).
import { median } from './statistics.js';
import { FAULTS, type FailoverResults } from './results.js';

/** Every trial's fault-to-Ready time as a dot, per fault, with and without the operator (log scale). */
export function failoverChart(f: FailoverResults, base: FailoverResults): string {
  const faults = FAULTS.filter((k) => f[k]?.ms.length || base[k]?.ms.length);
  const all = [...faults.flatMap((k) => f[k]?.ms ?? []), ...faults.flatMap((k) => base[k]?.ms ?? [])].filter(
    (x) => x > 0,
  );
  const lo = Math.log10(Math.max(100, Math.min(...all) / 1.5));
  const hi = Math.log10(Math.max(...all) * 1.5);
  const W = 720;
  const left = 170;
  const x = (ms: number) => left + ((Math.log10(Math.max(ms, 1)) - lo) / (hi - lo)) * (W - left - 20);
  const rows = faults.flatMap((k) => [
    { label: `${k}, operator`, ms: f[k]?.ms ?? [], color: '#1f77b4' },
    { label: `${k}, plain Kubernetes`, ms: base[k]?.ms ?? [], color: '#d62728' },
  ]);
  const H = 40 + rows.length * 28 + 40;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<text x="10" y="20" font-size="14">Fault to Ready with state (ms, log scale), every trial; bar = median</text>`,
  ];
  rows.forEach((r, i) => {
    const y = 45 + i * 28;
    parts.push(`<text x="10" y="${y + 4}">${r.label}</text>`);
    parts.push(`<line x1="${left}" x2="${W - 20}" y1="${y}" y2="${y}" stroke="#eee"/>`);
    for (const ms of r.ms)
      parts.push(`<circle cx="${x(ms).toFixed(1)}" cy="${y}" r="4" fill="${r.color}" fill-opacity="0.6"/>`);
    if (r.ms.length)
      parts.push(
        `<line x1="${x(median(r.ms)).toFixed(1)}" x2="${x(median(r.ms)).toFixed(1)}" y1="${y - 9}" y2="${y + 9}" stroke="#000" stroke-width="2"/>`,
      );
  });
  const axisY = 45 + rows.length * 28;
  for (let e = Math.ceil(lo); e <= Math.floor(hi); e++) {
    const ms = 10 ** e;
    parts.push(
      `<line x1="${x(ms)}" x2="${x(ms)}" y1="35" y2="${axisY}" stroke="#ccc" stroke-dasharray="2,3"/>`,
    );
    parts.push(
      `<text x="${x(ms)}" y="${axisY + 16}" text-anchor="middle">${ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`}</text>`,
    );
  }
  parts.push('</svg>');
  return parts.join('\n');
}
