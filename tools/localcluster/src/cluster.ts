// The local cluster as a whole: bring-up, teardown, status and faults. The CLI (cli.ts) is a thin shell
// around these; tests, the demo and the benchmark call the faults directly.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions, type V1Node } from '@kubernetes/client-node';
import { BRIDGE_IP, NAME_PREFIX, clusterNodeNames, nodeIp } from './addressing.js';
import { startArgoCd, stopArgoCd } from './argocd.js';
import { argocdBinDir, ensureArgoCd } from './argocd-build.js';
import { binDir, binaryPath, ensureBinaries } from './build.js';
import { cgroupRoots, removeCgroupRoot } from './cgroups.js';
import { controlPlaneAlive, kubeconfigYaml, startControlPlane, stopControlPlane } from './controlplane.js';
import { ensureHostPackages } from './host-packages.js';
import { assembleImages } from './images.js';
import { assertRoot, cleanupNetwork, createBridge, leftoverNetwork } from './network.js';
import {
  healNode,
  importImages,
  inNode,
  nodeState,
  partitionNode,
  prepareNode,
  readLog,
  restartNode,
  shutdownNode,
  startNode,
  powerOffNode,
  NETPOL_TABLE,
  type NodeOptions,
  type NodeSpec,
  type NodeState,
} from './node.js';
import { ensureNetpol, netpolCacheDir } from './netpol-build.js';
import { clusterDir, clusterStatePath, kubeconfigPath, nodesDir, repoRoot } from './paths.js';
import { alive, commandLine, findPids, runsFrom, signal, sleep } from './processes.js';

export interface UpOptions {
  nodes: number;
  nodeMonitorGracePeriodSeconds: number;
  tolerationSeconds: number;
  build: boolean;
  /** Also run Argo CD (built on first use). */
  argocd?: boolean;
  /** Enforce NetworkPolicies with kube-network-policies on every node (default on). */
  networkPolicies?: boolean;
}

export interface ClusterState {
  server: string;
  kubeconfig: string;
  archive: string;
  nodes: NodeSpec[];
  /** How the nodes were started; a node booted again by `fault start` runs the same. */
  nodeOptions: NodeOptions;
}

export class UsageError extends Error {}

const run = promisify(execFile);

type Log = (line: string) => void;

export function readState(): ClusterState | undefined {
  if (!existsSync(clusterStatePath)) return undefined;
  try {
    return JSON.parse(readFileSync(clusterStatePath, 'utf8')) as ClusterState;
  } catch {
    return undefined;
  }
}

/** The running cluster, or a UsageError saying how to start one. */
export function requireRunning(): ClusterState {
  const state = readState();
  if (!state || controlPlaneAlive(clusterDir).length === 0)
    throw new UsageError('the local cluster is not running; start it with `npm run cluster -- up`');
  return state;
}

function coreApi(): CoreV1Api {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  return kc.makeApiClient(CoreV1Api);
}

const readyOf = (n: V1Node | undefined) =>
  n?.status?.conditions?.find((c) => c.type === 'Ready')?.status ?? 'Unknown';

async function waitForNodes(core: CoreV1Api, names: string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const list = await core.listNode().catch(() => undefined);
    const ready = names.filter((n) => readyOf(list?.items.find((i) => i.metadata?.name === n)) === 'True');
    if (ready.length === names.length) return;
    if (Date.now() > deadline) {
      const missing = names.filter((n) => !ready.includes(n));
      throw new Error(
        `nodes not Ready after ${timeoutMs / 1000}s: ${missing.join(', ')} (logs: ${nodesDir}/<node>/logs/)`,
      );
    }
    await sleep(250);
  }
}

export async function up(o: UpOptions, log: Log = console.log): Promise<ClusterState> {
  assertRoot();
  const running = readState();
  if (running && controlPlaneAlive(clusterDir).length === 4) {
    log(`localcluster: already running (${running.server})`);
    const wanted = o.networkPolicies ?? true;
    if ((running.nodeOptions?.networkPolicies ?? false) !== wanted)
      log(
        `localcluster: it runs ${wanted ? 'without' : 'with'} network policy enforcement; \`down\` first to change that`,
      );
    if (o.argocd) await startArgoCd(log);
    return running;
  }
  const started = Date.now();
  await down(() => undefined);
  ensureHostPackages(log);
  await ensureBinaries(log);
  const nodeOptions: NodeOptions = { networkPolicies: o.networkPolicies ?? true };
  if (nodeOptions.networkPolicies) await ensureNetpol(log);
  // Built before anything starts, so a cold Argo CD build does not hold a half-started cluster.
  if (o.argocd) await ensureArgoCd(log);
  if (o.build) {
    log('localcluster: compiling the project (npm run build) for its images');
    execFileSync('npm', ['run', '-s', 'build'], { cwd: repoRoot, stdio: 'inherit' });
  }
  const { archive } = assembleImages(log);
  mkdirSync(clusterDir, { recursive: true });
  await createBridge();
  const cp = await startControlPlane({
    dir: clusterDir,
    address: BRIDGE_IP,
    nodeMonitorGracePeriodSeconds: o.nodeMonitorGracePeriodSeconds,
    tolerationSeconds: o.tolerationSeconds,
    log,
  });
  const kubeconfig = kubeconfigYaml(cp.server, readFileSync(cp.caFile), cp.token);
  writeFileSync(kubeconfigPath, kubeconfig, { mode: 0o600 });
  const nodes: NodeSpec[] = clusterNodeNames(o.nodes).map((name, index) => ({
    name,
    index,
    controlPlane: index === 0,
  }));
  const state: ClusterState = { server: cp.server, kubeconfig: kubeconfigPath, archive, nodes, nodeOptions };
  writeFileSync(clusterStatePath, JSON.stringify(state, null, 2));
  for (const n of nodes) await prepareNode(n, nodes.length, kubeconfig, cp.kubeletClientCa);
  log(
    `localcluster: starting ${nodes.length} nodes (containerd, kubelet, kube-proxy${nodeOptions.networkPolicies ? ', kube-network-policies' : ''} each)`,
  );
  const nodeStart = Date.now();
  await Promise.all(nodes.map((n) => startNode(n, archive, nodeOptions)));
  const core = coreApi();
  await waitForNodes(
    core,
    nodes.map((n) => n.name),
    120_000,
  );
  // The kubelet may not set node-role labels on itself (kubeadm labels the node through the API, too).
  await core.patchNode(
    { name: nodes[0]!.name, body: { metadata: { labels: { 'node-role.kubernetes.io/control-plane': '' } } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
  log(
    `localcluster: ${nodes.length} nodes Ready ${((Date.now() - nodeStart) / 1000).toFixed(1)}s after their start`,
  );
  if (o.argocd) await startArgoCd(log);
  log(`localcluster: up in ${((Date.now() - started) / 1000).toFixed(1)}s; use it with:`);
  log(`  export KUBECONFIG=${kubeconfigPath}`);
  return state;
}

/** Rebuilds this project's images and imports them into every running node (after a code change). */
export async function reloadImages(build: boolean, log: Log = console.log): Promise<void> {
  const state = requireRunning();
  if (build) execFileSync('npm', ['run', '-s', 'build'], { cwd: repoRoot, stdio: 'inherit' });
  const { archive } = assembleImages(log);
  const running = [];
  for (const n of state.nodes) if ((await nodeState(n)) !== 'Stopped') running.push(n);
  await Promise.all(running.map((n) => importImages(n.name, archive)));
  log(
    `localcluster: images imported into ${running.map((n) => n.name).join(', ')}; restart Pods to use them`,
  );
}

/** Node specs of the running cluster, or of whatever a crashed run left in .local/cluster/nodes. */
function knownNodes(): NodeSpec[] {
  const state = readState();
  if (state) return state.nodes;
  if (!existsSync(nodesDir)) return [];
  return readdirSync(nodesDir).map((name) => {
    const index = clusterNodeNames(200).indexOf(name);
    return { name, index: Math.max(index, 0), controlPlane: index === 0 };
  });
}

/** Processes started from the cache's binaries or inside .local/cluster: the cluster's, whoever started them. */
function clusterProcesses(): number[] {
  const bins = [binDir(), argocdBinDir(), join(netpolCacheDir(), 'bin')];
  return findPids((p) => runsFrom(commandLine(p), bins) || commandLine(p).includes(clusterDir));
}

/** What the cluster left on the host: processes, network objects, cgroups. Empty after a clean `down`. */
export async function leftovers(): Promise<string[]> {
  const left = clusterProcesses().map((p) => `process ${p}: ${commandLine(p).slice(0, 120)}`);
  left.push(...(await leftoverNetwork()));
  left.push(...cgroupRoots(NAME_PREFIX).map((c) => `cgroup ${c}`));
  // Its table lives in a node's network namespace and goes with it; in the host's it would queue the
  // host's own connections to Pods.
  const tables = await run('nft', ['list', 'tables']).catch(() => ({ stdout: '' }));
  if (tables.stdout.includes(` ${NETPOL_TABLE}\n`) || tables.stdout.endsWith(` ${NETPOL_TABLE}`))
    left.push(`nftables table inet ${NETPOL_TABLE} on the host`);
  return left;
}

export async function down(log: Log = console.log): Promise<void> {
  const started = Date.now();
  const nodes = knownNodes();
  await stopArgoCd();
  await Promise.all(nodes.map((n) => shutdownNode(n).catch(() => [])));
  await stopControlPlane(clusterDir);
  // Whatever a crashed run left.
  for (let round = 0; round < 20; round++) {
    const pids = clusterProcesses();
    if (pids.length === 0) break;
    for (const p of pids) signal(p, 'SIGKILL');
    await sleep(100);
  }
  await cleanupNetwork();
  for (const root of cgroupRoots(NAME_PREFIX)) removeCgroupRoot(root);
  rmSync(clusterDir, { recursive: true, force: true });
  rmSync(kubeconfigPath, { force: true });
  const left = await leftovers();
  if (left.length) log(`localcluster: down, but these are left:\n  ${left.join('\n  ')}`);
  else log(`localcluster: down (${((Date.now() - started) / 1000).toFixed(1)}s); nothing left behind`);
}

function nodeSpec(state: ClusterState, name: string): NodeSpec {
  const spec = state.nodes.find((n) => n.name === name);
  if (!spec)
    throw new UsageError(`unknown node "${name}"; nodes: ${state.nodes.map((n) => n.name).join(', ')}`);
  return spec;
}

export interface NodeStatus {
  name: string;
  ip: string;
  state: NodeState;
  ready: string;
  pods: { key: string; ip: string; phase: string }[];
}

export async function status(): Promise<{ server: string; kubeconfig: string; nodes: NodeStatus[] }> {
  const state = requireRunning();
  const core = coreApi();
  const [apiNodes, pods] = await Promise.all([
    core.listNode().catch(() => undefined),
    core.listPodForAllNamespaces().catch(() => undefined),
  ]);
  const nodes = await Promise.all(
    state.nodes.map(async (n) => ({
      name: n.name,
      ip: nodeIp(n.index),
      state: await nodeState(n),
      ready: readyOf(apiNodes?.items.find((i) => i.metadata?.name === n.name)),
      pods: (pods?.items ?? [])
        .filter((p) => p.spec?.nodeName === n.name)
        .map((p) => ({
          key: `${p.metadata?.namespace}/${p.metadata?.name}`,
          ip: p.status?.podIP ?? '',
          phase: p.status?.phase ?? '',
        })),
    })),
  );
  return { server: state.server, kubeconfig: kubeconfigPath, nodes };
}

export type FaultAction = 'crash' | 'partition' | 'heal' | 'stop' | 'start';
export const FAULTS: FaultAction[] = ['crash', 'partition', 'heal', 'stop', 'start'];

/** SIGKILL of a container's main process, found through the node's own containerd. */
async function crash(state: ClusterState, target: string, container?: string): Promise<string> {
  const [namespace, name] = target.includes('/') ? target.split('/', 2) : ['default', target];
  const pod = await coreApi()
    .readNamespacedPod({ name: name!, namespace: namespace! })
    .catch(() => undefined);
  if (!pod) throw new UsageError(`pod ${namespace}/${name} not found`);
  // Native sidecars (init containers with restartPolicy Always) run beside the app and can crash too.
  const statuses = [...(pod.status?.containerStatuses ?? []), ...(pod.status?.initContainerStatuses ?? [])];
  const cs = container ? statuses.find((s) => s.name === container) : statuses[0];
  if (!cs)
    throw new UsageError(
      `pod ${namespace}/${name} has no container ${container ?? ''}; containers: ${statuses.map((s) => s.name).join(', ') || 'none started'}`,
    );
  if (!cs.state?.running || !cs.containerID)
    throw new UsageError(`container ${cs.name} of ${namespace}/${name} is not running`);
  const node = nodeSpec(state, pod.spec!.nodeName!);
  const id = cs.containerID.replace(/^\w+:\/\//, '');
  const tasks = await inNode(node.name, [
    binaryPath('ctr'),
    '-a',
    '/run/containerd/containerd.sock',
    '-n',
    'k8s.io',
    'tasks',
    'ls',
  ]);
  const line = tasks.split('\n').find((l) => l.startsWith(id));
  const pid = Number(line?.split(/\s+/)[1]);
  if (!line || !alive(pid))
    throw new UsageError(
      `container ${cs.name} of ${namespace}/${name} has no running process on ${node.name}`,
    );
  signal(pid, 'SIGKILL');
  return `killed ${namespace}/${name} container ${cs.name} (pid ${pid}) on ${node.name}`;
}

export async function fault(action: FaultAction, target: string, container?: string): Promise<string> {
  const state = requireRunning();
  if (action === 'crash') return crash(state, target, container);
  const node = nodeSpec(state, target);
  const now = await nodeState(node);
  if (action === 'start' && now !== 'Stopped')
    throw new UsageError(`node ${node.name} is ${now}; only a stopped node can be started`);
  if ((action === 'partition' || action === 'stop') && now === 'Stopped')
    throw new UsageError(`node ${node.name} is Stopped; start it first (fault start ${node.name})`);
  if (action === 'partition') await partitionNode(node);
  else if (action === 'heal') await healNode(node);
  else if (action === 'stop') await powerOffNode(node);
  else await restartNode(node, state.archive, state.nodeOptions ?? { networkPolicies: false });
  return `${action} ${node.name}: node is now ${await nodeState(node)}`;
}

/**
 * The output of a Pod's container (default: its first), every restart oldest first, from the kubelet's
 * /var/log/pods/<ns>_<pod>_<uid>/<container>/<restart>.log on whichever node ran it last.
 */
export function podLogs(target: string, container?: string): string {
  const [ns, pod] = target.split('/', 2);
  const dirs = (existsSync(nodesDir) ? readdirSync(nodesDir) : [])
    .flatMap((node) => {
      const pods = join(nodesDir, node, 'varlog', 'pods');
      return existsSync(pods)
        ? readdirSync(pods)
            .filter((d) => d.startsWith(`${ns}_${pod}_`) && d.split('_').length === 3)
            .map((d) => join(pods, d))
        : [];
    })
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  if (!dirs[0]) throw new UsageError(`no logs for ${target} on any node`);
  const containers = readdirSync(dirs[0]).sort();
  const name = container ?? containers[0];
  if (!name || !containers.includes(name))
    throw new UsageError(`no container ${name} in ${target}; containers: ${containers.join(', ')}`);
  return readdirSync(join(dirs[0], name))
    .filter((f) => /^\d+\.log$/.test(f))
    .sort((a, b) => parseInt(a) - parseInt(b))
    .map((f) => readLog(join(dirs[0]!, name, f)))
    .join('');
}
