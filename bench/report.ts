// What a run leaves behind: the JSON of .local/bench/latest.json and the markdown table on stdout.
import { median } from './statistics.js';
import {
  FAULTS,
  type CheckpointResults,
  type FailoverResults,
  type RaceSample,
  type ScaleResult,
} from './results.js';

/** The JSON a run writes; scenario keys are absent when neither this run nor an earlier one had them. */
export type BenchJson = Record<string, unknown>;

export const LATEST = '.local/bench/latest.json';
export const CHART = '.local/bench/failover.svg';

/** A run of some scenarios keeps the others' figures from the previous run, marked with that run's date. */
export function carryOver(out: BenchJson, previous: BenchJson, only: ReadonlySet<string>): void {
  const carriedOver: Record<string, unknown> = {};
  for (const key of ['race', 'checkpoint', 'failover', 'baseline', 'scale'])
    if (!only.has(key) && previous[key] !== undefined) {
      out[key] = previous[key];
      carriedOver[key] =
        (previous.carriedOver as Record<string, unknown> | undefined)?.[key] ?? previous.date;
    }
  if (Object.keys(carriedOver).length) out.carriedOver = carriedOver;
}

/** The summary figures at the JSON's top level, from whichever scenarios it holds. */
export function summary(out: BenchJson): Record<string, number | undefined> {
  const f = out.failover as FailoverResults | undefined;
  const base = out.baseline as FailoverResults | undefined;
  const cp = out.checkpoint as CheckpointResults | undefined;
  return {
    crashFailoverP50Ms: f && median(f.crash.ms),
    deleteFailoverP50Ms: f && median(f.delete.ms),
    partitionFailoverP50Ms: f && median(f.partition.ms),
    leaderPartitionFailoverP50Ms: f && median(f['leader-partition']?.ms ?? []),
    maxLostUpdates: f && Math.max(0, ...FAULTS.flatMap((k) => f[k]?.lost ?? [])),
    checkpoint1MiBP50Ms: cp?.['1MiB']?.p50Ms,
    baselineCrashP50Ms: base && median(base.crash.ms),
    baselineDeleteP50Ms: base && median(base.delete.ms),
    baselinePartitionP50Ms: base && median(base.partition.ms),
  };
}

/** The stdout of a run: a heading, the markdown table, and where the JSON (and the chart, if any) went. */
export function markdown(out: BenchJson, files: { json: string; chart?: string }): string {
  const f = out.failover as FailoverResults | undefined;
  const base = out.baseline as FailoverResults | undefined;
  const cp = out.checkpoint as CheckpointResults | undefined;
  const rows: string[] = [
    '| scenario | with operator (p50) | lost updates (max) | plain Kubernetes (p50) | state kept (plain) |',
    '|---|---|---|---|---|',
  ];
  for (const fault of FAULTS) {
    if (!f && !base) break;
    // Results kept from a run before this fault existed have no entry for it.
    const mine = f?.[fault]?.ms ?? [];
    const plain = base?.[fault]?.ms ?? [];
    if (!mine.length && !plain.length) continue;
    rows.push(
      `| ${fault} → Ready | ${mine.length ? `${median(mine)} ms (max ${Math.max(...mine)} ms)` : '-'} | ${mine.length ? Math.max(...f![fault].lost) : '-'} | ${plain.length ? `${median(plain)} ms` : '-'} | none |`,
    );
  }
  if (cp)
    for (const [k, v] of Object.entries(cp))
      rows.push(
        `| checkpoint ${k} | ${v.p50Ms} ms (p90 ${v.p90Ms} ms; raw baseline ${v.rawP50Ms} ms, ×${v.ratio}; raw over TLS ${v.rawTlsP50Ms ?? '-'} ms, ×${v.ratioTls ?? '-'}) | | | |`,
      );
  const race = out.race as RaceSample[] | undefined;
  if (race) {
    rows.push(`| Pod create → Ready (count app) | ${median(race.map((r) => r.createToReadyMs))} ms | | | |`);
    rows.push(
      `| SIGKILL → app answers again | ${median(race.map((r) => r.appAnswersMs))} ms | | | |`,
      `| SIGKILL → restartCount in a watch | ${median(race.map((r) => r.apiRestartMs))} ms | | | |`,
      `| restart race windows (API − app; > 0: app first) | ${race.map((r) => r.windowMs).join(', ')} ms | | | |`,
    );
  }
  const scales = out.scale as ScaleResult[] | undefined;
  for (const sc of Array.isArray(scales) ? scales : []) {
    const what = `${sc.pods} Pods × ${sc.stateBytes >= 1024 ** 2 ? `${sc.stateBytes / 1024 ** 2} MiB` : `${sc.stateBytes / 1024} KiB`} at 1 s`;
    rows.push(`| controller CPU / RSS, ${what} | ${sc.cores.toFixed(3)} cores / ${sc.rssMiB} MiB | | | |`);
    rows.push(
      `| busiest helper CPU / RSS, ${what} | ${sc.helperCoresMax.toFixed(3)} cores / ${sc.helperRssMiBMax} MiB | | | |`,
    );
    rows.push(
      `| checkpoint p50 / p99 (histogram bucket), ${what} | ${sc.checkpointP50Ms} / ${sc.checkpointP99Ms} ms | | | |`,
    );
    rows.push(
      `| pulls per second (good / failed), status writes per policy per minute, ${what} | ${sc.pullsPerSecond.toFixed(1)} / ${sc.failedPullsPerSecond.toFixed(1)}, ${sc.statusWritesPerPolicyPerMinute.toFixed(1)} | | | |`,
    );
  }
  if (files.chart) rows.push('', `Chart: ${files.chart}`);
  return `Benchmark ${String(out.date)} on ${String(out.machine)}, ${String(out.trials)} trials${out.carriedOver ? ` (kept from earlier runs: ${JSON.stringify(out.carriedOver)})` : ''}\n\n${rows.join('\n')}\n\nJSON: ${files.json}\n`;
}
