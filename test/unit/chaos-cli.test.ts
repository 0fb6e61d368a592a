// `npm run chaos` refuses bad flags before it touches the cluster: exit 2 and a message naming the flag and
// what it accepts. The fault plan is a pure function of the seed.
import { spawnSync } from 'node:child_process';
import { chaosPlan, FAULT_KINDS } from '../../harness/chaos.js';

const chaos = (...args: string[]) =>
  spawnSync('npx', ['tsx', 'tools/chaos/main.ts', ...args], { encoding: 'utf8', timeout: 60_000 });

describe('npm run chaos', () => {
  it.each([
    [
      ['--kinds', 'crash,meteor'],
      /--kinds "crash,meteor" is not valid; allowed: a comma list of crash, delete/,
    ],
    [['--faults', '0'], /--faults "0" is not valid; allowed: a whole number from 1 to 1000/],
    [['--namespace', 'Bad_NS'], /--namespace "Bad_NS" is not valid; allowed: a namespace name/],
  ])('refuses %j', (args, message) => {
    const r = chaos(...args);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(message);
  });

  it('says what it does with --help', () => {
    const r = chaos('--help');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/--faults/);
  });

  it('draws every kind once before drawing freely, the same for the same seed', () => {
    const plan = chaosPlan(7, 8);
    expect(new Set(plan.slice(0, FAULT_KINDS.length).map((s) => s.kind)).size).toBe(FAULT_KINDS.length);
    expect(chaosPlan(7, 8)).toEqual(plan);
    expect(chaosPlan(8, 8)).not.toEqual(plan);
  });
});
