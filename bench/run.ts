// `npm run bench [-- --quick] [-- --trials N] [-- --only a,b]`: measures the operator on the local cluster.
// Figures are medians over N trials; JSON goes to .local/bench/latest.json, a markdown table to stdout.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { UsageError } from '../src/cli/flags.js';
import { failoverChart } from './chart.js';
import { startCluster } from './cluster.js';
import { benchHelp, benchOptions } from './flags.js';
import { carryOver, CHART, LATEST, markdown, summary, type BenchJson } from './report.js';
import type { FailoverResults, ScaleResult } from './results.js';
import { checkpointLatency } from './scenarios/checkpoint.js';
import { failover } from './scenarios/failover.js';
import { restartRace } from './scenarios/race.js';
import { scale } from './scenarios/scale.js';

const log = (m: string) => process.stderr.write(`bench: ${m}\n`);

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes('--help')) return void process.stdout.write(benchHelp());
  const opts = benchOptions(args);
  const { trials, only, faults } = opts;
  const ctx = await startCluster(log);
  const out: BenchJson = {
    date: new Date().toISOString(),
    machine: `${cpus().length} cores, ${Math.round(totalmem() / 1024 ** 3)} GiB, Node ${process.version}`,
    trials,
  };
  if (only.has('race')) out.race = await restartRace(ctx, 5);
  if (only.has('checkpoint')) out.checkpoint = await checkpointLatency(ctx, trials);
  if (only.has('failover')) out.failover = await failover(ctx, trials, true, faults);
  if (only.has('baseline'))
    out.baseline = await failover(ctx, trials, false, faults, opts.baselinePartitionTrials);
  if (only.has('scale')) {
    const results: ScaleResult[] = [];
    for (const size of opts.scaleSizes) results.push(await scale(ctx, opts.scalePods, size));
    out.scale = results;
  }
  const previous = existsSync(LATEST) ? (JSON.parse(readFileSync(LATEST, 'utf8')) as BenchJson) : {};
  carryOver(out, previous, only);
  Object.assign(out, summary(out));
  mkdirSync('.local/bench', { recursive: true });
  writeFileSync(LATEST, JSON.stringify(out, null, 2));
  const f = out.failover as FailoverResults | undefined;
  const base = out.baseline as FailoverResults | undefined;
  if (f && base) writeFileSync(CHART, failoverChart(f, base));
  process.stdout.write(markdown(out, { json: LATEST, ...(f && base ? { chart: CHART } : {}) }));
}

main().catch((err: unknown) => {
  process.stderr.write(
    `bench: ${err instanceof UsageError ? 'error: ' : ''}${err instanceof Error ? err.message : String(err)}\n`,
  );
  process.exit(err instanceof UsageError ? 2 : 1);
});
