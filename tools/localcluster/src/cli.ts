// `npm run cluster -- <command>`: a real Kubernetes cluster (control plane and nodes) on this machine.
import {
  FAULTS,
  UsageError,
  down,
  fault,
  podLogs,
  reloadImages,
  status,
  up,
  type FaultAction,
} from './cluster.js';
import { ensureArgoCd } from './argocd-build.js';
import { ensureBinaries } from './build.js';
import { ensureNetpol } from './netpol-build.js';
import { kubeconfigPath } from './paths.js';

const HELP: Record<string, string> = {
  '': `Usage: npm run cluster -- <command> [options]

A local Kubernetes cluster of real components, all on this machine: etcd, kube-apiserver,
kube-controller-manager and kube-scheduler, plus real nodes (containerd, runc, CNI, kubelet, kube-proxy,
kube-network-policies), each node in its own network namespace. Built from Go modules and Debian packages on first use.

Commands:
  up [--nodes N] [--argocd]     start the cluster (idempotent); prints the kubeconfig path
  build [--argocd]              build what \`up\` needs into the cache, start nothing
  down                          stop everything and remove what the cluster made (safe to repeat)
  status                        nodes, their state, and the Pods running on each
  images                        rebuild this project's images and import them into every node
  logs <ns>/<pod> [-c name]     print a Pod container's output (every restart, oldest first)
  fault crash <ns>/<pod>        SIGKILL a container's main process (the kubelet restarts it)
  fault partition <node>        cut the node's link: the API and other nodes lose it, it keeps running
  fault heal <node>             reconnect a partitioned node
  fault stop <node>             power loss: every process of the node dies at once
  fault start <node>            boot a stopped node again

Run \`npm run cluster -- <command> --help\` for a command's options.`,
  up: `Usage: npm run cluster -- up [--nodes N] [--grace-period S] [--toleration-seconds S] [--no-build] [--argocd]
                             [--no-network-policies]

Starts the cluster unless it is already running. The first run builds Kubernetes, containerd and two small
helpers from Go modules (4-10 min on 2 cores, cached in ~/.cache/pull-state-operator) and installs missing
Debian packages (runc, containernetworking-plugins, nftables, iptables, conntrack, openssl).
NetworkPolicies are enforced: every node runs kube-network-policies v0.8.0 (nftables + NFQUEUE; its own
build, up to 9 min cold, cached in ~/.cache/pull-state-operator/kube-network-policies-*).
  --nodes N                 worker nodes besides the control-plane node (default 3, 1..20)
  --grace-period S          node-monitor-grace-period of kube-controller-manager (default 8, 2..300)
  --toleration-seconds S    default not-ready/unreachable toleration of new Pods (default 300, 0..3600)
  --no-build                do not run \`npm run build\` before assembling this project's images
  --argocd                  also run Argo CD v3.6 (application controller, repo server, Redis) against the
                            cluster, with this project's health checks; its first build takes about 10 min
                            (cached in ~/.cache/pull-state-operator/argocd-*). Given to a running cluster, it
                            starts only Argo CD
  --no-network-policies     do not run kube-network-policies: NetworkPolicies are stored but not enforced,
                            as on a cluster whose network plugin ignores them`,
  build: `Usage: npm run cluster -- build [--argocd | --argocd-only]

Builds the cluster's binaries (Kubernetes, containerd, kube-network-policies) into the cache without starting
anything, so a later \`up\` starts at once. Safe to run beside \`up\`: a build that another process is doing
is waited for, not repeated. \`npm test\` runs \`build --argocd\` in the background at idle CPU priority, so
the builds go on while its tests run.
  --argocd                  also build Argo CD and kustomize (about 10 min cold)
  --argocd-only             build only Argo CD and kustomize`,
  down: `Usage: npm run cluster -- down

Stops every process, removes the network namespaces, links, routes and cgroups the cluster made, and
reports anything still left. Safe to repeat, also after a crashed run.`,
  status: `Usage: npm run cluster -- status

Prints each node with its state (Running, Partitioned, Stopped), its Ready condition, and its Pods.`,
  images: `Usage: npm run cluster -- images [--no-build]

Runs \`npm run build\`, assembles this project's images again and imports them into every running node, as
\`kind load\` does; restart the Pods (\`kubectl rollout restart\`) to run the new code.
  --no-build                do not run \`npm run build\` first`,
  logs: `Usage: npm run cluster -- logs <namespace>/<pod> [-c <container>]

Prints the output of a Pod's container (default: the first one), every restart oldest first, read from the
node's /var/log/pods. The kubelet removes them with the Pod, as on any node.`,
  fault: `Usage: npm run cluster -- fault <crash|partition|heal|stop|start> <target> [-c <container>]

  crash <ns>/<pod>     SIGKILL the container's main process; the kubelet restarts it with its own back-off
  partition <node>     take the node's uplink down: it goes NotReady in the API, its kubelet keeps probing
                       its own Pods, and they keep answering inside the node
  heal <node>          bring the uplink of a partitioned node back
  stop <node>          kill the node's kubelet, kube-proxy, containerd, shims and containers at once;
                       its uplink goes dark, as a powered-off machine answers nothing
  start <node>         boot a stopped node again (fresh /run, same disk)

  -c <container>       crash this container (a plain container or a native sidecar, that is an init
                       container with restartPolicy Always); default: the Pod's first container`,
};

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

async function upCommand(args: string[]): Promise<void> {
  const { flags } = parseFlags(args, {
    nodes: 'value',
    'grace-period': 'value',
    'toleration-seconds': 'value',
    'no-build': 'bool',
    argocd: 'bool',
    'no-network-policies': 'bool',
  });
  await up({
    nodes: intFlag(flags, 'nodes', 3, 1, 20),
    nodeMonitorGracePeriodSeconds: intFlag(flags, 'grace-period', 8, 2, 300),
    tolerationSeconds: intFlag(flags, 'toleration-seconds', 300, 0, 3600),
    build: !flags['no-build'],
    argocd: flags.argocd === 'true',
    networkPolicies: !flags['no-network-policies'],
  });
  console.log(kubeconfigPath);
}

async function buildCommand(args: string[]): Promise<void> {
  const { flags } = parseFlags(args, { argocd: 'bool', 'argocd-only': 'bool' });
  const started = Date.now();
  if (!flags['argocd-only']) {
    await ensureBinaries();
    await ensureNetpol();
  }
  if (flags.argocd || flags['argocd-only']) await ensureArgoCd();
  console.log(`localcluster: built (or found in the cache) in ${Math.round((Date.now() - started) / 1000)}s`);
}

async function statusCommand(): Promise<void> {
  const s = await status();
  console.log(`API server: ${s.server}\nkubeconfig: ${s.kubeconfig}`);
  for (const n of s.nodes) {
    console.log(`${n.name.padEnd(14)} ${n.ip.padEnd(13)} ${n.state.padEnd(12)} Ready=${n.ready}`);
    for (const p of n.pods) console.log(`    ${p.key.padEnd(60)} ${p.ip.padEnd(14)} ${p.phase}`);
  }
}

function logsCommand(args: string[]): void {
  const { positional, flags } = parseFlags(args, { c: 'value', container: 'value' });
  const target = positional[0];
  if (!target || !target.includes('/')) throw new UsageError('logs needs <namespace>/<pod>');
  process.stdout.write(podLogs(target, flags.c ?? flags.container));
}

async function faultCommand(args: string[]): Promise<void> {
  const { positional, flags } = parseFlags(args, { c: 'value', container: 'value' });
  const [action, target] = positional;
  if (!action || !FAULTS.includes(action as FaultAction))
    throw new UsageError(`fault needs one of ${FAULTS.join(', ')}`);
  if (!target)
    throw new UsageError(`fault ${action} needs a ${action === 'crash' ? '<namespace>/<pod>' : '<node>'}`);
  console.log(await fault(action as FaultAction, target, flags.c ?? flags.container));
}

async function main(argv: string[]): Promise<void> {
  const [command = '', ...rest] = argv;
  if (command === '' || command === '--help' || command === '-h' || command === 'help') {
    console.log(HELP['']);
    return;
  }
  if (!(command in HELP))
    throw new UsageError(
      `unknown command "${command}"; commands: ${Object.keys(HELP).filter(Boolean).join(', ')}`,
    );
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(HELP[command]);
    return;
  }
  if (command === 'up') await upCommand(rest);
  else if (command === 'build') await buildCommand(rest);
  else if (command === 'down') await down();
  else if (command === 'status') await statusCommand();
  else if (command === 'images')
    await reloadImages(!parseFlags(rest, { 'no-build': 'bool' }).flags['no-build']);
  else if (command === 'logs') logsCommand(rest);
  else await faultCommand(rest);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof UsageError) {
    console.error(`cluster: ${err.message}`);
    process.exit(2);
  }
  console.error(`cluster: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
