import { failoverChart } from '../../../bench/chart.js';
import type { FailoverResults } from '../../../bench/results.js';

const none = { ms: [], lost: [] };
const results = (r: Partial<FailoverResults>): FailoverResults => ({
  crash: none,
  delete: none,
  partition: none,
  'leader-partition': none,
  ...r,
});

const operator = results({
  crash: { ms: [1500, 3100, 3300], lost: [0, 3, 9] },
  'leader-partition': { ms: [12_000], lost: [6] },
});
const plain = results({
  crash: { ms: [2600, 3200], lost: [30, 31] },
  partition: { ms: [309_904], lost: [3000] },
});

const circles = (svg: string, color: string) =>
  [...svg.matchAll(new RegExp(`<circle cx="([\\d.]+)" cy="(\\d+)" r="4" fill="${color}"`, 'g'))].map((m) => ({
    cx: m[1],
    cy: Number(m[2]),
  }));
const medianBars = (svg: string) =>
  [...svg.matchAll(/<line x1="([\d.]+)" x2="[\d.]+" y1="(\d+)" y2="\d+" stroke="#000"/g)].map((m) => ({
    x: m[1],
    y: Number(m[2]) + 9,
  }));
const labels = (svg: string) => [...svg.matchAll(/<text x="10" y="\d+">([^<]*)<\/text>/g)].map((m) => m[1]);

describe('failoverChart', () => {
  const svg = failoverChart(operator, plain);

  it('is one SVG document', () => {
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.endsWith('</svg>')).toBe(true);
  });

  it('has two rows per fault that has a trial on either side, in the faults’ order, and none for the rest', () => {
    expect(labels(svg)).toEqual([
      'crash, operator',
      'crash, plain Kubernetes',
      'partition, operator',
      'partition, plain Kubernetes',
      'leader-partition, operator',
      'leader-partition, plain Kubernetes',
    ]);
    expect(svg).not.toContain('delete,');
    expect(svg).toMatch(/^<svg [^>]* height="248"/); // 40 + 6 rows × 28 + 40
  });

  it('draws one dot per trial on its row, in the colour of its side', () => {
    const mine = circles(svg, '#1f77b4');
    const theirs = circles(svg, '#d62728');
    expect(mine.map((c) => c.cy)).toEqual([45, 45, 45, 157]);
    expect(theirs.map((c) => c.cy)).toEqual([73, 73, 129]);
  });

  it('draws one median bar per row with trials, through the median trial’s dot', () => {
    const bars = medianBars(svg);
    expect(bars.map((b) => b.y)).toEqual([45, 73, 129, 157]);
    // The crash row's median is its second trial (3100 ms); of two plain trials the upper one (3200 ms).
    expect(bars[0]!.x).toBe(circles(svg, '#1f77b4')[1]!.cx);
    expect(bars[1]!.x).toBe(circles(svg, '#d62728')[1]!.cx);
  });

  it('places dots on a log scale: ten times the time, the same distance further right', () => {
    const svg2 = failoverChart(
      results({ crash: { ms: [1000, 10_000, 100_000], lost: [0, 0, 0] } }),
      results({}),
    );
    const xs = circles(svg2, '#1f77b4').map((c) => Number(c.cx));
    expect(xs[2]! - xs[1]!).toBeCloseTo(xs[1]! - xs[0]!, 0);
  });

  it('labels the decades of the axis in ms below 1 s and in s above', () => {
    const ticks = [...svg.matchAll(/text-anchor="middle">([^<]+)</g)].map((m) => m[1]);
    expect(ticks).toEqual(['1 s', '10 s', '100 s']);
    const fast = failoverChart(results({ crash: { ms: [120, 900], lost: [0, 0] } }), results({}));
    expect([...fast.matchAll(/text-anchor="middle">([^<]+)</g)].map((m) => m[1])).toEqual(['100 ms', '1 s']);
  });
});
