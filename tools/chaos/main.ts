// `npm run chaos -- --faults N --seed S`: a random mix of faults (container crash, Pod delete, partition
// then heal, power loss then start, the leader deleted, a helper deleted) against two replicas of the count
// app on the local cluster, checking after each that the failed Pod's state came back within the loss
// bound, that nothing was restored into or deleted from the Pod that did not fail, and that no node was
// fenced that was not faulted. Exit code 1 if any check failed.
import { execFileSync } from 'node:child_process';
import { KubeConfig } from '@kubernetes/client-node';
import { Chaos, FAULT_KINDS, type ChaosFault } from '../../harness/chaos.js';
import { helpText, parseFlags, UsageError, type FlagSpecs } from '../../src/cli/flags.js';
import { OPERATOR_NAMESPACE } from '../../src/api/index.js';

const kinds = FAULT_KINDS.join('|');
const FLAGS = {
  faults: { kind: 'int', min: 1, max: 1000, default: 10, help: 'how many faults to inject' },
  seed: { kind: 'int', min: 0, max: 2 ** 31 - 1, default: 0, help: 'random seed (0: a new one, printed)' },
  kinds: {
    kind: 'string',
    default: FAULT_KINDS.join(','),
    pattern: {
      test: new RegExp(`^(${kinds})(,(${kinds}))*$`),
      allowed: `a comma list of ${FAULT_KINDS.join(', ')}`,
    },
    help: 'fault kinds to draw from',
  },
  namespace: {
    kind: 'string',
    default: 'chaos',
    pattern: { test: /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, allowed: 'a namespace name' },
    help: 'namespace for the app (deleted and created again)',
  },
} satisfies FlagSpecs;

const log = (line: string) => process.stdout.write(`chaos: ${line}\n`);

function kubectl(...args: string[]): string {
  return execFileSync('kubectl', ['--kubeconfig', '.local/kubeconfig', ...args], { encoding: 'utf8' });
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  if (args.includes('--help')) {
    process.stdout.write(
      helpText(
        'npm run chaos -- [flags]',
        'Random faults against two replicas of the count app on the local cluster (started if needed); checks the state comes back, nothing else is touched, no healthy node is fenced.',
        FLAGS,
      ),
    );
    return 0;
  }
  const flags = parseFlags(args, FLAGS);
  const seed = flags.seed || Math.floor(Math.random() * 2 ** 31);
  log(`seed ${seed} (run again with --seed ${seed})`);
  log('starting the local cluster and installing the operator');
  execFileSync('npx', ['tsx', 'tools/localcluster/src/cli.ts', 'up'], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  kubectl('apply', '--server-side', '--force-conflicts', '-k', '.');
  kubectl(
    'rollout',
    'status',
    '-n',
    OPERATOR_NAMESPACE,
    'deployment/pull-state-controller',
    '--timeout=180s',
  );
  kubectl('rollout', 'status', '-n', OPERATOR_NAMESPACE, 'daemonset/pull-state-helper', '--timeout=180s');
  const kc = new KubeConfig();
  kc.loadFromFile('.local/kubeconfig');
  const chaos = new Chaos(kc, {
    faults: flags.faults,
    seed,
    namespace: flags.namespace,
    kinds: flags.kinds.split(',') as ChaosFault[],
    log,
  });
  log(`deploying two replicas of the count app in namespace ${flags.namespace}`);
  await chaos.setUp();
  const report = await chaos.run();
  log(`faults survived: ${report.survived}/${report.faults.length}; worst loss: ${report.worstLost} updates`);
  for (const [kind, r] of Object.entries(report.readyMsByKind))
    log(`  ${kind.padEnd(9)} n=${r.n} to Ready p50 ${r.p50} ms, max ${r.max} ms`);
  const failed = report.faults.filter((f) => f.violations.length);
  for (const f of failed) log(`FAILED fault ${f.n} (${f.kind} ${f.pod}): ${f.violations.join('; ')}`);
  return failed.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(
      `${err instanceof UsageError ? 'error: ' : 'chaos failed: '}${err instanceof Error ? err.message : String(err)}\n`,
    );
    process.exit(err instanceof UsageError ? 2 : 1);
  },
);
