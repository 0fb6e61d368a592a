// `npm run cluster -- <command>`: a real Kubernetes control plane plus simulated nodes on this machine.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, openSync, readFileSync, readdirSync, rmSync, statSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureControlPlane } from './build.js';
import { cleanupNetwork, assertCanCreateNamespaces } from './network.js';
import { clusterDir, daemonLogPath, daemonStatePath, kubeconfigPath, repoRoot } from './paths.js';
import { PidFile } from './processes.js';
import type { DaemonState } from './daemon.js';

const HELP: Record<string, string> = {
  '': `Usage: npm run cluster -- <command> [options]

A local Kubernetes cluster: etcd, kube-apiserver, kube-controller-manager and kube-scheduler built from Go
modules, plus simulated nodes whose Pods run as local processes in their own network namespaces.

Commands:
  up [--nodes N]                start the cluster (idempotent); prints the kubeconfig path
  down                          stop everything and remove what the cluster made (safe to repeat)
  status                        nodes, their state, and the Pods running on each
  logs <ns>/<pod> [-c name]     print a Pod container's output
  fault crash <ns>/<pod>        kill a Pod's process as a crash would (restarted per restartPolicy)
  fault partition <node>        cut a node off: its Pods are unreachable and it stops heartbeating
  fault heal <node>             undo partition (or restart a stopped node)
  fault stop <node>             the node and all its processes die

Run \`npm run cluster -- <command> --help\` for a command's options.`,
  up: `Usage: npm run cluster -- up [--nodes N] [--grace-period S] [--toleration-seconds S] [--no-build]

Starts the cluster unless it is already running, building the control plane on first use (15-30 min).
  --nodes N                 worker nodes besides the control-plane node (default 3, 1..20)
  --grace-period S          node-monitor-grace-period of kube-controller-manager (default 8, 2..300)
  --toleration-seconds S    default not-ready/unreachable toleration of new Pods (default 300, 0..3600)
  --no-build                do not run \`npm run build\` (Pods of this project's images run from dist/)`,
  down: `Usage: npm run cluster -- down

Stops every process, removes the network namespaces, links and state the cluster made. Safe to repeat.`,
  status: `Usage: npm run cluster -- status

Prints each node with its state (Running, Partitioned, Stopped), its Ready condition, and its Pods.`,
  logs: `Usage: npm run cluster -- logs <namespace>/<pod> [-c <container>]

Prints the output of a Pod's container (default: the first one).`,
  fault: `Usage: npm run cluster -- fault <crash|partition|heal|stop> <target> [-c <container>]

  crash <ns>/<pod>     SIGKILL the Pod's container; restartCount goes up as on a real node
  partition <node>     the node's Pods become unreachable and the node stops heartbeating; processes keep running
  heal <node>          reconnect a partitioned node, or restart a stopped one
  stop <node>          the node and its processes die`,
};

class UsageError extends Error {}

function parseFlags(
  args: string[],
  allowed: Record<string, 'value' | 'bool'>,
): { positional: string[]; flags: Record<string, string> } {
  const positional: string[] = [];
  const flags: Record<string, string> = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('-')) {
      positional.push(a);
      continue;
    }
    const [name, inline] = a.replace(/^--?/, '').split('=', 2) as [string, string | undefined];
    const kind = allowed[name];
    if (!kind)
      throw new UsageError(
        `unknown option ${a}; allowed: ${
          Object.keys(allowed)
            .map((k) => (k.length > 1 ? '--' : '-') + k)
            .join(', ') || 'none'
        }`,
      );
    if (kind === 'bool') flags[name] = 'true';
    else {
      const value = inline ?? args[++i];
      if (value === undefined) throw new UsageError(`option ${a} needs a value`);
      flags[name] = value;
    }
  }
  return { positional, flags };
}

function intFlag(
  flags: Record<string, string>,
  name: string,
  fallback: number,
  min: number,
  max: number,
): number {
  const raw = flags[name];
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, got "${raw}"`);
  }
  return Number(raw);
}

function readState(): DaemonState | undefined {
  if (!existsSync(daemonStatePath)) return undefined;
  try {
    const state = JSON.parse(readFileSync(daemonStatePath, 'utf8')) as DaemonState;
    process.kill(state.pid, 0);
    return state;
  } catch {
    return undefined;
  }
}

async function call(
  state: DaemonState,
  method: string,
  path: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${state.port}${path}`, {
    method,
    signal: AbortSignal.timeout(60_000),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

function requireRunning(): DaemonState {
  const state = readState();
  if (!state) throw new UsageError('the local cluster is not running; start it with `npm run cluster -- up`');
  return state;
}

async function cleanupLeftovers(): Promise<void> {
  new PidFile(join(clusterDir, 'pids')).killAll();
  await cleanupNetwork();
}

interface StatusNode {
  name: string;
  ip: string;
  state: string;
  ready: string;
  pods: { key: string; ip: string }[];
}

async function up(args: string[]): Promise<void> {
  const { flags } = parseFlags(args, {
    nodes: 'value',
    'grace-period': 'value',
    'toleration-seconds': 'value',
    'no-build': 'bool',
  });
  const options = {
    nodes: intFlag(flags, 'nodes', 3, 1, 20),
    nodeMonitorGracePeriodSeconds: intFlag(flags, 'grace-period', 8, 2, 300),
    tolerationSeconds: intFlag(flags, 'toleration-seconds', 300, 0, 3600),
  };
  const running = readState();
  if (running) {
    console.log(`localcluster: already running (${running.server})`);
    console.log(running.kubeconfig);
    return;
  }
  assertCanCreateNamespaces();
  const started = Date.now();
  await cleanupLeftovers();
  await ensureControlPlane();
  if (!flags['no-build']) {
    console.log('localcluster: compiling the project (npm run build) for the Pods of its images');
    execFileSync('npm', ['run', '-s', 'build'], { cwd: repoRoot, stdio: 'inherit' });
  }
  rmSync(clusterDir, { recursive: true, force: true });
  mkdirSync(clusterDir, { recursive: true });
  const logFd = openSync(daemonLogPath, 'a');
  const daemon = spawn(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(new URL('./daemon.ts', import.meta.url)), JSON.stringify(options)],
    { cwd: repoRoot, detached: true, stdio: ['ignore', logFd, logFd] },
  );
  daemon.unref();
  console.log(`localcluster: starting ${options.nodes + 1} nodes (log: ${daemonLogPath})`);
  const deadline = Date.now() + 180_000;
  for (;;) {
    if (daemon.exitCode !== null || Date.now() > deadline) {
      const tail = existsSync(daemonLogPath)
        ? readFileSync(daemonLogPath, 'utf8').split('\n').slice(-25).join('\n')
        : '';
      throw new Error(`the cluster did not come up; last log lines:\n${tail}`);
    }
    const state = readState();
    if (state) {
      const { body } = await call(state, 'GET', '/status').catch(() => ({
        body: { nodes: [] } as Record<string, unknown>,
      }));
      const nodes = body.nodes as StatusNode[];
      if (nodes.length === options.nodes + 1 && nodes.every((n) => n.ready === 'True')) break;
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  console.log(`localcluster: up in ${((Date.now() - started) / 1000).toFixed(1)}s; use it with:`);
  console.log(`  export KUBECONFIG=${kubeconfigPath}`);
  console.log(kubeconfigPath);
}

async function down(): Promise<void> {
  const started = Date.now();
  const state = readState();
  if (state) {
    await call(state, 'POST', '/shutdown').catch(() => undefined);
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      try {
        process.kill(state.pid, 0);
        await new Promise((r) => setTimeout(r, 200));
      } catch {
        break;
      }
    }
    try {
      process.kill(state.pid, 'SIGKILL');
    } catch {
      // Exited cleanly.
    }
  }
  await cleanupLeftovers();
  rmSync(clusterDir, { recursive: true, force: true });
  rmSync(kubeconfigPath, { force: true });
  console.log(`localcluster: down (${((Date.now() - started) / 1000).toFixed(1)}s)`);
}

async function status(): Promise<void> {
  const { body } = await call(requireRunning(), 'GET', '/status');
  console.log(`API server: ${String(body.server)}\nkubeconfig: ${String(body.kubeconfig)}`);
  for (const n of body.nodes as StatusNode[]) {
    console.log(`${n.name.padEnd(14)} ${n.ip.padEnd(13)} ${n.state.padEnd(12)} Ready=${n.ready}`);
    for (const p of n.pods) console.log(`    ${p.key.padEnd(60)} ${p.ip}`);
  }
}

function logs(args: string[]): void {
  const { positional, flags } = parseFlags(args, { c: 'value', container: 'value' });
  const target = positional[0];
  if (!target || !target.includes('/')) throw new UsageError('logs needs <namespace>/<pod>');
  const [ns, pod] = target.split('/', 2);
  const nodesDir = join(clusterDir, 'nodes');
  const dirs = (existsSync(nodesDir) ? readdirSync(nodesDir) : [])
    .map((n) => join(nodesDir, n, 'pods', `${ns}_${pod}`))
    .filter((d) => existsSync(d))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  if (!dirs[0]) throw new UsageError(`no logs for ${target}`);
  const container = flags.c ?? flags.container;
  const files = readdirSync(dirs[0]).filter((f) => f.endsWith('.log'));
  const file = container ? `${container}.log` : files[0];
  if (!file || !files.includes(file))
    throw new UsageError(
      `no container ${container} in ${target}; containers: ${files.map((f) => f.slice(0, -4)).join(', ')}`,
    );
  process.stdout.write(readFileSync(join(dirs[0], file)));
}

async function fault(args: string[]): Promise<void> {
  const { positional, flags } = parseFlags(args, { c: 'value', container: 'value' });
  const [action, target] = positional;
  const actions = ['crash', 'partition', 'heal', 'stop'];
  if (!action || !actions.includes(action)) throw new UsageError(`fault needs one of ${actions.join(', ')}`);
  if (!target)
    throw new UsageError(`fault ${action} needs a ${action === 'crash' ? '<namespace>/<pod>' : '<node>'}`);
  const q = new URLSearchParams({ action, target });
  const container = flags.c ?? flags.container;
  if (container) q.set('container', container);
  const { status: code, body } = await call(requireRunning(), 'POST', `/fault?${q}`);
  if (code !== 200) throw new UsageError(String(body.message));
  console.log(String(body.message));
}

async function main(argv: string[]): Promise<void> {
  const [command = '', ...rest] = argv;
  if (command === '' || command === '--help' || command === '-h' || command === 'help') {
    console.log(HELP['']);
    return;
  }
  if (!(command in HELP))
    throw new UsageError(`unknown command "${command}"; commands: up, down, status, logs, fault`);
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(HELP[command]);
    return;
  }
  if (command === 'up') await up(rest);
  else if (command === 'down') await down();
  else if (command === 'status') await status();
  else if (command === 'logs') logs(rest);
  else await fault(rest);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof UsageError) {
    console.error(`cluster: ${err.message}`);
    process.exit(2);
  }
  console.error(`cluster: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
