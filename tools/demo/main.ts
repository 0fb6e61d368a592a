// `npm run demo`: from a fresh clone to a measured failover in one command. Starts the local cluster (built
// on first use), installs the operator with `kubectl apply -k .`, deploys the count app, then crashes its
// process and partitions its node, and shows what the operator did each time. Unattended unless --interactive.
import { execFileSync } from 'node:child_process';
import { createInterface } from 'node:readline/promises';
import { CoreV1Api, CustomObjectsApi, KubeConfig, type V1Pod } from '@kubernetes/client-node';
import {
  FENCE_TAINT,
  GROUP,
  OPERATOR_NAMESPACE,
  PLURAL,
  READINESS_GATE,
  VERSION,
  type IPullStatePolicy,
} from '../../src/api/index.js';
import { helpText, parseFlags, UsageError, type FlagSpecs } from '../../src/cli/flags.js';
import {
  failoverTrial,
  nodesHealed,
  readyPod,
  stats,
  type Fault,
  type TrialResult,
} from '../../harness/failover.js';
import { eventually } from '../../harness/poll.js';

const FLAGS = {
  keep: { kind: 'bool', default: false, help: 'leave the cluster running at the end, to explore it' },
  interactive: {
    kind: 'bool',
    default: false,
    help: 'pause before each step until Enter is pressed (needs a terminal)',
  },
} satisfies FlagSpecs;

const NS = 'demo';
const APP = 'count-app';
const KUBECONFIG = '.local/kubeconfig';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const say = (line = '') => process.stdout.write(`${line}\n`);
const kubectl = (...args: string[]) =>
  execFileSync('kubectl', ['--kubeconfig', KUBECONFIG, ...args], { encoding: 'utf8' });

let interactive = false;
async function step(title: string): Promise<void> {
  say(`\n== ${title}`);
  if (!interactive) return;
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  await rl.question('   (Enter to continue) ');
  rl.close();
}

const until = <T>(what: string, f: () => Promise<T | undefined | false>, ms = 180_000) =>
  eventually(what, f, ms);

interface Detection {
  /** Milliseconds from the fault until the operator's first visible reaction, and what it was. */
  ms?: number;
  what?: string;
}

/**
 * Watches the API for the operator's first reaction to a fault: the Pod's readiness gate closed (restart
 * in place), the Pod deleted or terminating (its node failed), or the node fenced.
 */
function watchDetection(core: CoreV1Api, pod: V1Pod, t0: number): { result: Detection; stop: () => void } {
  const result: Detection = {};
  let running = true;
  void (async () => {
    while (running && result.ms === undefined) {
      const now = await core
        .readNamespacedPod({ name: pod.metadata!.name!, namespace: NS })
        .catch(() => undefined);
      const gate = now?.status?.conditions?.find((c) => c.type === READINESS_GATE);
      const node = await core.readNode({ name: pod.spec!.nodeName! }).catch(() => undefined);
      const what = !now
        ? 'Pod deleted by the operator'
        : now.metadata?.deletionTimestamp
          ? 'Pod being deleted'
          : gate?.status === 'False'
            ? `readiness gate closed (${gate.reason})`
            : (node?.spec?.taints ?? []).some((t) => t.key === FENCE_TAINT)
              ? `node ${pod.spec!.nodeName} fenced`
              : undefined;
      if (what) {
        result.ms = Math.round(performance.now() - t0);
        result.what = what;
      } else await sleep(25);
    }
  })();
  return { result, stop: () => (running = false) };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes('--help')) {
    process.stdout.write(
      helpText(
        'npm run demo -- [flags]',
        'Starts the local cluster, installs the operator, deploys the count app, and shows a crash and a node partition being restored.',
        FLAGS,
      ),
    );
    return;
  }
  const flags = parseFlags(args, FLAGS);
  interactive = flags.interactive && process.stdin.isTTY === true;
  if (flags.interactive && !interactive) say('demo: --interactive needs a terminal; running unattended');
  let ok = false;
  try {
    await run();
    ok = true;
  } finally {
    if (flags.keep) {
      say(`\nThe cluster keeps running (npm run cluster -- down stops it).`);
    } else {
      say(`\n== Tearing the cluster down (use --keep to explore it instead)`);
      execFileSync('npx', ['tsx', 'tools/localcluster/src/cli.ts', 'down'], { stdio: 'inherit' });
    }
    if (!ok) say('demo: FAILED (see the message above)');
  }
}

async function run(): Promise<void> {
  await step(
    'Starting the local cluster (the first run builds Kubernetes and containerd from source: 4-10 minutes on 2 cores)',
  );
  execFileSync('npx', ['tsx', 'tools/localcluster/src/cli.ts', 'up'], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const kc = new KubeConfig();
  kc.loadFromFile(KUBECONFIG);
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const policy = () =>
    custom.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: NS,
      plural: PLURAL,
      name: APP,
    }) as Promise<IPullStatePolicy>;

  await step('Installing the operator: kubectl apply -k .');
  process.stdout.write(kubectl('apply', '--server-side', '--force-conflicts', '-k', '.'));
  const nodes = (await core.listNode()).items.length;
  await until('the controllers and a helper on every node', async () => {
    const pods = (await core.listNamespacedPod({ namespace: OPERATOR_NAMESPACE })).items;
    const ready = pods.filter((p) =>
      p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
    );
    return ready.length >= nodes + 2;
  });
  process.stdout.write(kubectl('get', 'pods', '-n', OPERATOR_NAMESPACE, '-o', 'wide'));

  await step(`Deploying the count app (examples/count-app/policy.yaml) in namespace ${NS}`);
  await core.deleteNamespace({ name: NS }).catch(() => undefined);
  await until('the old demo namespace gone', () =>
    core.readNamespace({ name: NS }).then(
      () => false,
      () => true,
    ),
  );
  kubectl('create', 'namespace', NS);
  await until('the default ServiceAccount', () =>
    core.readNamespacedServiceAccount({ name: 'default', namespace: NS }),
  );
  process.stdout.write(kubectl('apply', '-n', NS, '-f', 'examples/count-app/policy.yaml'));
  const first = await until('the count app Ready', () => readyPod(NS, `app=${APP}`));
  await until('its first checkpoint', async () =>
    (await policy()).status?.checkpoints?.some((c) => c.podUID === first.metadata!.uid),
  );
  for (let i = 0; i < 3; i++) {
    const s = await stats(first.status!.podIP!);
    say(`   counter: ${s?.count ?? '?'} (Pod ${first.metadata!.name} on ${first.spec!.nodeName})`);
    await sleep(1000);
  }
  process.stdout.write(kubectl('get', 'pullstatepolicies', '-n', NS, '-o', 'wide'));

  const rows: { fault: Fault; r: TrialResult; d: Detection; from: string }[] = [];
  for (const fault of ['crash', 'partition'] as Fault[]) {
    await step(
      fault === 'crash'
        ? 'Fault 1: the app process is killed (npm run cluster -- fault crash); Kubernetes restarts it empty'
        : "Fault 2: the app's node is cut off the network (npm run cluster -- fault partition)",
    );
    const before = await until('the count app Ready', () => readyPod(NS, `app=${APP}`));
    await sleep(2500); // a fresh checkpoint of this Pod
    let watch: ReturnType<typeof watchDetection> | undefined;
    const r = await failoverTrial(NS, `app=${APP}`, fault, {
      hook: async () => {
        watch = watchDetection(core, before, performance.now());
      },
    });
    watch?.stop();
    const p = await policy();
    const from = p.status?.lastRestore
      ? `${p.status.lastRestore.fromPod} via node ${p.status.lastRestore.node}`
      : '?';
    rows.push({ fault, r, d: watch?.result ?? {}, from });
    say(`   detected after:   ${watch?.result.ms ?? '?'} ms (${watch?.result.what ?? 'not seen'})`);
    say(`   restored into:    Pod ${r.podAfter} on node ${r.nodeAfter} (copy of ${from})`);
    say(`   Ready with state: ${r.faultToReadyMs} ms after the fault`);
    say(
      `   counter:          ${r.countAtFault} at the fault, ${r.restoredCount} restored: ${r.lostUpdates} updates lost`,
    );
    if (fault === 'partition') await until('the healed node Ready and unfenced', nodesHealed);
  }

  await step('Summary');
  say(
    '| fault | detected after | Ready with state after | restored into | counter at fault → restored | updates lost |',
  );
  say('|---|---|---|---|---|---|');
  for (const { fault, r, d } of rows)
    say(
      `| ${fault} | ${d.ms ?? '?'} ms | ${r.faultToReadyMs} ms | ${r.podAfter} on ${r.nodeAfter} | ${r.countAtFault} → ${r.restoredCount} | ${r.lostUpdates} |`,
    );
  say('\nPlain Kubernetes would have restarted the app with its counter at 0 both times.');
  say('\nExplore (with --keep):');
  say(`  export KUBECONFIG=$PWD/${KUBECONFIG}`);
  say(`  kubectl get pullstatepolicies -n ${NS} -o wide`);
  say(`  kubectl describe pullstatepolicy ${APP} -n ${NS}        # conditions, lastRestore, Events`);
  say(`  kubectl get events -n ${NS} --sort-by=.lastTimestamp`);
  say(`  npm run cluster -- fault crash ${NS}/<pod>              # try it yourself`);
  for (const { r } of rows)
    if (r.restoredCount === null || r.lostUpdates > 11)
      throw new Error(`${r.fault}: state not restored within one interval`);
}

main().catch((err: unknown) => {
  process.stderr.write(
    `demo: ${err instanceof UsageError ? 'error: ' : ''}${err instanceof Error ? err.message : String(err)}\n`,
  );
  process.exit(err instanceof UsageError ? 2 : 1);
});
