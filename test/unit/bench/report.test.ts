import { carryOver, markdown, summary, type BenchJson } from '../../../bench/report.js';
import type { FailoverResults, ScaleResult } from '../../../bench/results.js';

const none = { ms: [], lost: [] };
const results = (r: Partial<FailoverResults>): FailoverResults => ({
  crash: none,
  delete: none,
  partition: none,
  'leader-partition': none,
  ...r,
});

const scale1KiB: ScaleResult = {
  pods: 30,
  stateBytes: 1024,
  loadAverage: 3.2,
  cores: 0.12345,
  rssMiB: 80,
  helperCoresMax: 0.05,
  helperRssMiBMax: 60,
  checkpointP50Ms: 5,
  checkpointP99Ms: 25,
  statusWritesPerPolicyPerMinute: 2.04,
  pullsPerSecond: 29.96,
  failedPullsPerSecond: 0,
};

const run = (): BenchJson => ({
  date: '2026-12-07T03:37:11.202Z',
  machine: '2 cores, 24 GiB, Node v20.20.2',
  trials: 3,
  race: [
    { createToReadyMs: 1038, appAnswersMs: 700, apiRestartMs: 650, windowMs: -50 },
    { createToReadyMs: 1100, appAnswersMs: 720, apiRestartMs: 640, windowMs: -80 },
    { createToReadyMs: 990, appAnswersMs: 690, apiRestartMs: 700, windowMs: 10 },
  ],
  checkpoint: {
    '1MiB': { p50Ms: 23.8, p90Ms: 30.1, rawP50Ms: 21.5, ratio: 1.11, rawTlsP50Ms: 22.9, ratioTls: 1.04 },
    // From a run before the TLS baseline existed.
    '16MiB': { p50Ms: 310.5, p90Ms: 350, rawP50Ms: 280.2, ratio: 1.11 },
  },
  failover: results({
    crash: { ms: [1500, 3100, 3300], lost: [0, 3, 9] },
    'leader-partition': { ms: [12_000], lost: [6] },
  }),
  baseline: results({
    crash: { ms: [2600, 3200, 3500], lost: [30, 31, 32] },
    partition: { ms: [309_904], lost: [3000] },
  }),
  scale: [scale1KiB],
});

describe('markdown', () => {
  it('gives a heading, one row per measured figure, and where the JSON and the chart went', () => {
    expect(markdown(run(), { json: '.local/bench/latest.json', chart: '.local/bench/failover.svg' })).toBe(
      [
        'Benchmark 2026-12-07T03:37:11.202Z on 2 cores, 24 GiB, Node v20.20.2, 3 trials',
        '',
        '| scenario | with operator (p50) | lost updates (max) | plain Kubernetes (p50) | state kept (plain) |',
        '|---|---|---|---|---|',
        '| crash → Ready | 3100 ms (max 3300 ms) | 9 | 3200 ms | none |',
        '| partition → Ready | - | - | 309904 ms | none |',
        '| leader-partition → Ready | 12000 ms (max 12000 ms) | 6 | - | none |',
        '| checkpoint 1MiB | 23.8 ms (p90 30.1 ms; raw baseline 21.5 ms, ×1.11; raw over TLS 22.9 ms, ×1.04) | | | |',
        '| checkpoint 16MiB | 310.5 ms (p90 350 ms; raw baseline 280.2 ms, ×1.11; raw over TLS - ms, ×-) | | | |',
        '| Pod create → Ready (count app) | 1038 ms | | | |',
        '| SIGKILL → app answers again | 700 ms | | | |',
        '| SIGKILL → restartCount in a watch | 650 ms | | | |',
        '| restart race windows (API − app; > 0: app first) | -50, -80, 10 ms | | | |',
        '| controller CPU / RSS, 30 Pods × 1 KiB at 1 s | 0.123 cores / 80 MiB | | | |',
        '| busiest helper CPU / RSS, 30 Pods × 1 KiB at 1 s | 0.050 cores / 60 MiB | | | |',
        '| checkpoint p50 / p99 (histogram bucket), 30 Pods × 1 KiB at 1 s | 5 / 25 ms | | | |',
        '| pulls per second (good / failed), status writes per policy per minute, 30 Pods × 1 KiB at 1 s | 30.0 / 0.0, 2.0 | | | |',
        '',
        'Chart: .local/bench/failover.svg',
        '',
        'JSON: .local/bench/latest.json',
        '',
      ].join('\n'),
    );
  });

  it('names the scenarios kept from earlier runs, and no chart when there is none', () => {
    const text = markdown(
      { date: 'd', machine: 'm', trials: 10, carriedOver: { race: '2026-11-24T10:00:00.000Z' } },
      { json: 'x.json' },
    );
    expect(text).toBe(
      [
        'Benchmark d on m, 10 trials (kept from earlier runs: {"race":"2026-11-24T10:00:00.000Z"})',
        '',
        '| scenario | with operator (p50) | lost updates (max) | plain Kubernetes (p50) | state kept (plain) |',
        '|---|---|---|---|---|',
        '',
        'JSON: x.json',
        '',
      ].join('\n'),
    );
  });

  it('writes state sizes of a MiB and more in MiB', () => {
    const text = markdown({ ...run(), scale: [{ ...scale1KiB, stateBytes: 16 * 1024 ** 2 }] }, { json: 'j' });
    expect(text).toContain('| controller CPU / RSS, 30 Pods × 16 MiB at 1 s |');
  });

  it('reads fault rows from a failover without a baseline, and a baseline without a failover', () => {
    const { baseline: _b, ...onlyFailover } = run();
    expect(markdown(onlyFailover, { json: 'j' })).toContain(
      '| crash → Ready | 3100 ms (max 3300 ms) | 9 | - | none |',
    );
    const { failover: _f, ...onlyBaseline } = run();
    expect(markdown(onlyBaseline, { json: 'j' })).toContain('| crash → Ready | - | - | 3200 ms | none |');
  });
});

describe('summary', () => {
  it('takes the headline figures from the scenarios in the JSON', () => {
    expect(summary(run())).toEqual({
      crashFailoverP50Ms: 3100,
      deleteFailoverP50Ms: NaN,
      partitionFailoverP50Ms: NaN,
      leaderPartitionFailoverP50Ms: 12_000,
      maxLostUpdates: 9,
      checkpoint1MiBP50Ms: 23.8,
      baselineCrashP50Ms: 3200,
      baselineDeleteP50Ms: NaN,
      baselinePartitionP50Ms: 309_904,
    });
  });
  it('leaves out what no scenario measured', () => {
    expect(Object.values(summary({ date: 'd', race: [] })).every((v) => v === undefined)).toBe(true);
  });
});

describe('carryOver', () => {
  it('keeps the scenarios this run skipped from the previous JSON, with the date they were measured', () => {
    const out: BenchJson = { date: 'now', trials: 3, race: ['new'] };
    carryOver(
      out,
      {
        date: 'last',
        race: ['old'],
        failover: 'F',
        baseline: 'B',
        carriedOver: { baseline: 'before last' },
      },
      new Set(['race', 'checkpoint']),
    );
    expect(out).toEqual({
      date: 'now',
      trials: 3,
      race: ['new'],
      failover: 'F',
      baseline: 'B',
      carriedOver: { failover: 'last', baseline: 'before last' },
    });
    expect(Object.keys(out)).toEqual(['date', 'trials', 'race', 'failover', 'baseline', 'carriedOver']);
  });
  it('adds nothing when the previous JSON has nothing this run skipped', () => {
    const out: BenchJson = { date: 'now' };
    carryOver(out, { date: 'last', race: ['old'] }, new Set(['race']));
    carryOver(out, {}, new Set(['checkpoint']));
    expect(out).toEqual({ date: 'now' });
  });
});
