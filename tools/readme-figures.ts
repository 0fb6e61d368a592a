// `npx tsx tools/readme-figures.ts [--check] [--json <path>]`: the figures table of README.md, rendered from
// the JSON `npm run bench` writes, so the front page only ever quotes figures a run produced. It replaces
// what lies between the figures markers; --check changes nothing and exits 1 if README.md is not what the
// JSON gives (a stale table after a new benchmark run). Run it from the repository root.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import { format, resolveConfig } from 'prettier';
import { helpText, parseFlags, UsageError, type FlagSpecs } from '../src/cli/flags.js';

const FLAGS = {
  check: { kind: 'bool', default: false, help: 'exit 1 if README.md differs from the JSON, write nothing' },
  json: { kind: 'string', default: '.local/bench/latest.json', help: 'the benchmark JSON to read' },
} satisfies FlagSpecs;

const README = 'README.md';
const START = '<!-- figures:start -->';
const END = '<!-- figures:end -->';

/** The faults bench/results.ts knows, in its order, as a reader would name them. */
const FAULTS = {
  crash: 'container crash (SIGKILL)',
  delete: 'Pod deleted (`kubectl delete pod`)',
  partition: "partition of the app's node",
  'leader-partition': 'partition of the node the app shares with the controller leader',
} as const;
type Fault = keyof typeof FAULTS;

interface Trials {
  ms: number[];
  lost: number[];
}

/** What this script reads of the bench JSON; everything else in it is left alone. */
interface Bench {
  date: string;
  machine: string;
  trials: number;
  commit?: string;
  failover: Partial<Record<Fault, Trials>>;
  baseline?: Partial<Record<Fault, Trials>>;
  checkpoint?: Record<string, { p50Ms: number; rawP50Ms: number }>;
  carriedOver?: Record<string, string>;
}

/** The JSON lacks something the table needs: the message names the file and the field. */
class FiguresError extends Error {}

const isNumbers = (v: unknown): v is number[] =>
  Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isFinite(x));
const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function readBench(path: string): Bench {
  if (!existsSync(path))
    throw new FiguresError(`${path}: no such file; run \`npm run bench\` first, or name one with --json`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new FiguresError(`${path}: not JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  const lacks = (field: string, what: string) =>
    new FiguresError(`${path}: ${field} is missing or not ${what} (bench/run.ts writes it)`);
  if (!isObject(raw)) throw lacks('the top level', 'an object');
  if (typeof raw.date !== 'string' || Number.isNaN(Date.parse(raw.date))) throw lacks('date', 'an ISO time');
  if (typeof raw.machine !== 'string') throw lacks('machine', 'a string');
  if (typeof raw.trials !== 'number') throw lacks('trials', 'a number');
  if (raw.commit !== undefined && typeof raw.commit !== 'string') throw lacks('commit', 'a string');
  // Trials of one fault pair up by index (time and loss of the same trial), so both lists must match.
  const trialsOf = (key: 'failover' | 'baseline') => {
    const value = raw[key];
    if (!isObject(value)) throw lacks(key, 'an object of faults');
    for (const [fault, t] of Object.entries(value)) {
      if (!(fault in FAULTS)) continue;
      if (!isObject(t) || !isNumbers(t.ms)) throw lacks(`${key}.${fault}.ms`, 'a list of numbers');
      if (!isNumbers(t.lost) || t.lost.length !== t.ms.length)
        throw lacks(`${key}.${fault}.lost`, `a list of ${t.ms.length} numbers (one per trial)`);
    }
    return value as Partial<Record<Fault, Trials>>;
  };
  const bench: Bench = { ...(raw as unknown as Bench), failover: trialsOf('failover') };
  if (raw.baseline !== undefined) bench.baseline = trialsOf('baseline');
  if (raw.checkpoint !== undefined) {
    if (!isObject(raw.checkpoint)) throw lacks('checkpoint', 'an object of state sizes');
    for (const [size, c] of Object.entries(raw.checkpoint))
      if (!isObject(c) || typeof c.p50Ms !== 'number' || typeof c.rawP50Ms !== 'number')
        throw lacks(`checkpoint.${size}.p50Ms and .rawP50Ms`, 'numbers');
  }
  return bench;
}

/** The bench's own median (the upper one of an even count), so the table agrees with its JSON and stdout. */
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms * 10) / 10} ms`;
  if (ms < 100_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms / 1000)} s (~${Math.round(ms / 60_000)} min)`;
}

const day = (iso: string) => iso.slice(0, 10);

function renderFigures(b: Bench, jsonPath: string): string {
  const rows: string[] = [];
  const missing: string[] = [];
  for (const fault of Object.keys(FAULTS) as Fault[]) {
    const mine = b.failover[fault];
    // Plain Kubernetes has no controller leader: the plain partition is what that fault costs without us.
    const plain = b.baseline?.[fault === 'leader-partition' ? 'partition' : fault];
    if (!mine?.ms.length) {
      missing.push(FAULTS[fault]);
      continue;
    }
    const plainTime = plain?.ms.length
      ? `Ready after ${duration(median(plain.ms))}`
      : 'time not measured in this run';
    rows.push(
      `| ${FAULTS[fault]} | Ready with its state after ${duration(median(mine.ms))} (max ${duration(Math.max(...mine.ms))}); ` +
        `${median(mine.lost)} updates lost (max ${Math.max(...mine.lost)}) | state lost; ${plainTime} |`,
    );
  }
  for (const [size, c] of Object.entries(b.checkpoint ?? {}))
    rows.push(
      `| checkpoint of a ${size.replace(/([KMG]iB)$/, ' $1')} state, p50 | ${duration(c.p50Ms)} | no checkpoint; the same bytes copied to another node over plain HTTP: ${duration(c.rawP50Ms)} |`,
    );
  if (!b.checkpoint) missing.push('checkpoint latency');
  if (!rows.length) throw new FiguresError(`${jsonPath}: holds no failover trials and no checkpoint figures`);
  const kept = Object.entries(b.carriedOver ?? {}).map(([k, date]) => `${k} from the run of ${day(date)}`);
  const source = [
    `\`npm run bench\` of ${day(b.date)}`,
    b.commit ? `at commit \`${b.commit}\`` : '',
    `on ${b.machine}, ${b.trials} trials per fault; medians, "max" the worst trial`,
  ].filter(Boolean);
  const notes = [
    `Count app at a 1 s interval (\`mode: http-sf\`), 10 updates a second: 10 updates are one interval.`,
    `${source.join(' ')}${kept.length ? ` (${kept.join(', ')})` : ''}.`,
    ...(missing.length ? [`Not measured in this run: ${missing.join(', ')}.`] : []),
    `Method and other figures: [docs/benchmarks.md](docs/benchmarks.md).`,
  ];
  return [
    START,
    `<!-- Generated by \`npx tsx tools/readme-figures.ts\` from ${jsonPath}; edit that script, not this table. -->`,
    '',
    '| fault or operation | with pull-state-operator | plain Kubernetes |',
    '| --- | --- | --- |',
    ...rows,
    '',
    notes.join('\n'),
    END,
  ].join('\n');
}

/** README.md with its figures block replaced; the markers must be there once, in order. */
function withFigures(readme: string, block: string): string {
  const start = readme.indexOf(START);
  const end = readme.indexOf(END);
  if (start < 0 || end < start || readme.indexOf(START, start + 1) >= 0)
    throw new FiguresError(`${README}: needs one ${START} followed by one ${END}`);
  return readme.slice(0, start) + block + readme.slice(end + END.length);
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  if (args.includes('--help')) {
    process.stdout.write(
      helpText(
        'npx tsx tools/readme-figures.ts [flags]',
        `Renders the figures table of ${README} (between ${START} and ${END}) from the benchmark JSON.`,
        FLAGS,
      ),
    );
    return 0;
  }
  const flags = parseFlags(args, FLAGS);
  const readme = readFileSync(README, 'utf8');
  // Named relative to the checkout in the README, so no machine's own paths end up in it.
  const block = renderFigures(readBench(flags.json), relative(process.cwd(), resolve(flags.json)));
  // Formatted as `npm run lint` wants it (aligned table columns), or --check would fail on every run.
  const next = await format(withFigures(readme, block), {
    ...(await resolveConfig(README)),
    filepath: README,
  });
  if (flags.check) {
    if (next === readme) return 0;
    process.stderr.write(
      `readme-figures: ${README} differs from ${flags.json}; run npx tsx tools/readme-figures.ts\n`,
    );
    return 1;
  }
  if (next !== readme) writeFileSync(README, next);
  process.stdout.write(
    `readme-figures: ${README} ${next === readme ? 'unchanged' : 'updated'} from ${flags.json}\n`,
  );
  return 0;
}

main().then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    process.stderr.write(`readme-figures: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = err instanceof UsageError ? 2 : 1;
  },
);
