import { histogramQuantile, metric } from '../../../bench/prometheus.js';

const histogram = (counts: [string, number][]) =>
  counts.map(([le, n]) => `pullstate_pull_duration_seconds_bucket{le="${le}"} ${n}`).join('\n');

describe('metric', () => {
  const text = [
    '# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.',
    'process_cpu_seconds_total 12.5',
    'process_resident_memory_bytes 1048576',
    'pullstate_helper_pulls_total{result="Succeeded"} 42',
    'pullstate_helper_pulls_total{result="failure"} 3',
  ].join('\n');

  it('reads the value of a whole sample line', () => {
    expect(metric(text, 'process_cpu_seconds_total')).toBe(12.5);
    expect(metric(text, 'process_resident_memory_bytes')).toBe(1048576);
  });
  it('takes labels as part of the name, written as a pattern', () => {
    expect(metric(text, 'pullstate_helper_pulls_total\\{result="Succeeded"\\}')).toBe(42);
    expect(metric(text, 'pullstate_helper_pulls_total\\{result="failure"\\}')).toBe(3);
  });
  it('is NaN for a series the text lacks, or a prefix of one', () => {
    expect(metric(text, 'pullstate_status_writes_total')).toBeNaN();
    expect(metric(text, 'process_cpu_seconds')).toBeNaN();
  });
});

describe('histogramQuantile', () => {
  // Between the scrapes: 0 pulls up to 5 ms, 40 up to 10 ms, 30 more up to 100 ms, 2 slower.
  const before = histogram([
    ['0.005', 10],
    ['0.01', 20],
    ['0.1', 30],
    ['+Inf', 30],
  ]);
  const after = histogram([
    ['0.005', 10],
    ['0.01', 60],
    ['0.1', 100],
    ['+Inf', 102],
  ]);

  it('answers the upper bound of the bucket the quantile falls in, over the interval only', () => {
    expect(histogramQuantile(before, after, 'pullstate_pull_duration_seconds', 0.5)).toBe(0.01);
    expect(histogramQuantile(before, after, 'pullstate_pull_duration_seconds', 0.9)).toBe(0.1);
    expect(histogramQuantile(before, after, 'pullstate_pull_duration_seconds', 0.99)).toBe(Infinity);
  });
  it('counts every bucket from zero when the first scrape lacks the series', () => {
    expect(histogramQuantile('', after, 'pullstate_pull_duration_seconds', 0.05)).toBe(0.005);
    expect(histogramQuantile('', after, 'pullstate_pull_duration_seconds', 0.5)).toBe(0.01);
  });
  it('is NaN when the second scrape lacks the series', () => {
    expect(histogramQuantile(before, '', 'pullstate_pull_duration_seconds', 0.5)).toBeNaN();
  });
});
