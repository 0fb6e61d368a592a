// `npm run chaos` in CI (#27): a fixed seed draws 10 faults of every kind (crash, delete, partition then heal,
// power loss then start, the leader deleted, a helper deleted) against two replicas of the count app without
// a process id. After each: the failed Pod's own state is back in a Ready Pod within the loss bound, nothing is
// restored into or deleted from the Pod that did not fail, and no node is fenced that was not faulted.
import { Chaos, chaosPlan } from '../../harness/chaos.js';
import { kc } from './cluster.js';
import { installOperator } from './operator.js';

const SEED = 20261206;
const FAULTS = 10;

beforeAll(async () => {
  await installOperator();
});

it('the seed draws every fault kind at least once', () => {
  const kinds = new Set(chaosPlan(SEED, FAULTS).map((s) => s.kind));
  expect([...kinds].sort()).toEqual(['crash', 'delete', 'helper', 'leader', 'partition', 'power']);
});

it(
  `survives ${FAULTS} random faults`,
  async () => {
    const chaos = new Chaos(kc, {
      faults: FAULTS,
      seed: SEED,
      namespace: 'it-chaos',
      // As it goes: a run that fails midway still shows the faults before.
      log: (l) => process.stdout.write(`${l}\n`),
    });
    await chaos.setUp();
    const report = await chaos.run();
    expect(report.faults.flatMap((f) => f.violations.map((v) => `fault ${f.n} ${f.kind}: ${v}`))).toEqual([]);
    expect(report.survived).toBe(FAULTS);
  },
  30 * 60_000,
);
