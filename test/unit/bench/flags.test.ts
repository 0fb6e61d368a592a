import { UsageError } from '../../../src/cli/flags.js';
import { benchHelp, benchOptions, FLAGS } from '../../../bench/flags.js';

describe('benchOptions', () => {
  it('runs every scenario and fault with 10 trials by default', () => {
    const o = benchOptions([]);
    expect(o).toEqual({
      trials: 10,
      only: new Set(['race', 'checkpoint', 'failover', 'baseline', 'scale']),
      faults: ['crash', 'delete', 'partition', 'leader-partition'],
      baselinePartitionTrials: 3,
      scalePods: 100,
      scaleSizes: [1024, 1048576],
    });
  });
  it('makes --quick 3 trials and 30 scale Pods, whatever --trials says', () => {
    const o = benchOptions(['--quick', '--trials', '20']);
    expect(o.trials).toBe(3);
    expect(o.scalePods).toBe(30);
  });
  it('never runs more plain partition trials than trials', () => {
    expect(benchOptions(['--trials', '2']).baselinePartitionTrials).toBe(2);
    expect(benchOptions(['--quick', '--baseline-partition-trials', '5']).baselinePartitionTrials).toBe(3);
    expect(benchOptions(['--trials', '20', '--baseline-partition-trials', '5']).baselinePartitionTrials).toBe(
      5,
    );
  });
  it('reads the lists of --only, --faults and --scale-sizes', () => {
    const o = benchOptions(['--only', 'race,scale', '--faults=crash', '--scale-sizes', '1,2,3']);
    expect([...o.only]).toEqual(['race', 'scale']);
    expect(o.faults).toEqual(['crash']);
    expect(o.scaleSizes).toEqual([1, 2, 3]);
  });
  it.each([
    [['--bogus'], 'unknown flag --bogus; allowed: --quick, --trials, --only, --scale-sizes, --faults'],
    [['--only', 'race,nope'], 'allowed: a comma list of race, checkpoint, failover, baseline, scale'],
    [['--only', 'race,'], '--only "race," is not valid'],
    [['--faults', 'power'], 'allowed: a comma list of crash, delete, partition, leader-partition'],
    [['--scale-sizes', '1KiB'], 'allowed: a comma list of state sizes in bytes'],
    [['--trials', '0'], 'allowed: a whole number from 1 to 1000'],
    [['--baseline-partition-trials', '1001'], 'allowed: a whole number from 1 to 1000'],
  ])('refuses %j as a usage error naming what is allowed', (args, message) => {
    expect(() => benchOptions(args)).toThrow(UsageError);
    expect(() => benchOptions(args)).toThrow(message);
  });
});

describe('benchHelp', () => {
  it('gives the usage line and every flag with its default', () => {
    const help = benchHelp();
    expect(help).toMatch(/^Usage: npm run bench -- \[flags\]\n/);
    for (const [name, spec] of Object.entries(FLAGS)) {
      expect(help).toContain(`--${name}`);
      expect(help).toContain(`${spec.help} (default ${String(spec.default)})`);
    }
  });
});
