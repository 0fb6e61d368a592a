// `npm run bench` flags: one table gives parsing, checking and --help (src/cli/flags.ts).
import { helpText, parseFlags, type FlagSpecs } from '../src/cli/flags.js';
import type { Fault } from './results.js';

export const FLAGS = {
  quick: { kind: 'bool', default: false, help: '3 trials per scenario instead of 10' },
  trials: { kind: 'int', min: 1, max: 1000, default: 10, help: 'trials per scenario' },
  only: {
    kind: 'string',
    default: 'race,checkpoint,failover,baseline,scale',
    pattern: {
      test: /^(race|checkpoint|failover|baseline|scale)(,(race|checkpoint|failover|baseline|scale))*$/,
      allowed: 'a comma list of race, checkpoint, failover, baseline, scale',
    },
    help: 'scenarios to run',
  },
  'scale-sizes': {
    kind: 'string',
    default: '1024,1048576',
    pattern: { test: /^\d+(,\d+)*$/, allowed: 'a comma list of state sizes in bytes' },
    help: 'state sizes of the scale scenario',
  },
  faults: {
    kind: 'string',
    default: 'crash,delete,partition,leader-partition',
    pattern: {
      test: /^(crash|delete|partition|leader-partition)(,(crash|delete|partition|leader-partition))*$/,
      allowed: 'a comma list of crash, delete, partition, leader-partition',
    },
    help: "faults of the failover and baseline scenarios (leader-partition: the app's node is the controller leader's; operator only)",
  },
  'baseline-partition-trials': {
    kind: 'int',
    min: 1,
    max: 1000,
    default: 3,
    help: 'partition trials without the operator (each waits ~5 min for Kubernetes to evict the Pod)',
  },
} satisfies FlagSpecs;

export const benchHelp = () =>
  helpText(
    'npm run bench -- [flags]',
    'Benchmarks on the local cluster (started if needed): checkpoint latency, failover vs plain Kubernetes, scale.',
    FLAGS,
  );

/** What a run does, from its flags. */
export interface BenchOptions {
  trials: number;
  only: Set<string>;
  faults: Fault[];
  /** Never more than `trials`. */
  baselinePartitionTrials: number;
  scalePods: number;
  scaleSizes: number[];
}

/** Throws UsageError (exit 2) for flags that are unknown or not valid. */
export function benchOptions(args: string[]): BenchOptions {
  const flags = parseFlags(args, FLAGS);
  const trials = flags.quick ? 3 : flags.trials;
  return {
    trials,
    only: new Set(flags.only.split(',')),
    faults: flags.faults.split(',') as Fault[],
    baselinePartitionTrials: Math.min(trials, flags['baseline-partition-trials']),
    scalePods: flags.quick ? 30 : 100,
    scaleSizes: flags['scale-sizes'].split(',').map(Number),
  };
}
