// One real node: a network namespace with its uplink on the host bridge, a mount namespace ("anchor") with a
// private /run and the node's own /var/lib and /var/log, and in it containerd, the kubelet and kube-proxy.
// Faults act on these real processes: a partition takes the uplink down, a stop kills every process at once.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { nodeIp, nodeNames, podCidr } from './addressing.js';
import { binDir, binaryPath } from './build.js';
import { cgroupPids, createCgroupRoot, removeCgroupRoot } from './cgroups.js';
import { CNI_BIN_DIR, RUNC } from './host-packages.js';
import { PAUSE_IMAGE } from './images.js';
import { createNodeNetwork, deleteNodeNetwork, setUplink, uplinkUp } from './network.js';
import {
  cniConfList,
  containerdConfig,
  kubeProxyConfig,
  kubeletConfig,
  registryHostsToml,
  type NodeConfigInput,
} from './node-config.js';
import { netpolBinary } from './netpol-build.js';
import { nodeDir } from './paths.js';
import { alive, findPids, namespaceOf, readPid, signal, sleep, spawnDetached, stopPid } from './processes.js';

const run = promisify(execFile);

export interface NodeSpec {
  name: string;
  index: number;
  controlPlane: boolean;
}

/** How nodes run, the same for every node of a cluster. */
export interface NodeOptions {
  /** Run kube-network-policies on the node, so NetworkPolicies are enforced. */
  networkPolicies: boolean;
}

/** The nftables table kube-network-policies keeps in the node's network namespace while it runs. */
export const NETPOL_TABLE = 'kube-network-policies';

export type NodeState = 'Running' | 'Partitioned' | 'Stopped';

const DAEMONS = ['kube-network-policies', 'kube-proxy', 'kubelet', 'containerd'] as const;
type Daemon = (typeof DAEMONS)[number] | 'anchor';

const pidFile = (node: string, daemon: Daemon) => join(nodeDir(node), 'pids', `${daemon}.pid`);
const logFile = (node: string, daemon: Daemon) => join(nodeDir(node), 'logs', `${daemon}.log`);
const CONTAINERD_SOCKET = '/run/containerd/containerd.sock';

function configInput(spec: NodeSpec, kubeletClientCa = ''): NodeConfigInput {
  const dir = nodeDir(spec.name);
  return {
    name: spec.name,
    ip: nodeIp(spec.index),
    podCidr: podCidr(spec.index),
    dir,
    cgroupRoot: nodeNames(spec.index, spec.name).cgroup,
    controlPlane: spec.controlPlane,
    pauseImage: `docker.io/${PAUSE_IMAGE}`,
    runtimeBinary: binaryPath('runc-shim'),
    cniBinDir: CNI_BIN_DIR,
    kubeconfig: join(dir, 'kubeconfig'),
    kubeletClientCa,
  };
}

/** Directories, configuration files, network and cgroups of a node, before any of its processes start. */
export async function prepareNode(
  spec: NodeSpec,
  allNodes: number,
  kubeconfig: string,
  kubeletClientCa: string,
): Promise<void> {
  const c = configInput(spec, kubeletClientCa);
  for (const d of ['varlib', 'varlog', 'cni', 'registry/_default', 'pids', 'logs'])
    mkdirSync(join(c.dir, d), { recursive: true });
  writeFileSync(join(c.dir, 'containerd.toml'), containerdConfig(c));
  writeFileSync(join(c.dir, 'registry', '_default', 'hosts.toml'), registryHostsToml());
  writeFileSync(join(c.dir, 'cni', '10-localcluster.conflist'), cniConfList(c));
  writeFileSync(join(c.dir, 'kubelet.yaml'), kubeletConfig(c));
  writeFileSync(join(c.dir, 'kube-proxy.yaml'), kubeProxyConfig(c));
  writeFileSync(c.kubeconfig, kubeconfig, { mode: 0o600 });
  await createNodeNetwork(spec.index, spec.name, allNodes);
  createCgroupRoot(c.cgroupRoot);
}

/** Runs `argv` inside the node (its network and mount namespaces). */
export function nodeCommand(node: string, argv: string[]): string[] {
  const anchor = readPid(pidFile(node, 'anchor'));
  if (!alive(anchor)) throw new Error(`node ${node} is not running`);
  return ['nsenter', '-t', String(anchor), '-m', '-n', `--wd=${nodeDir(node)}`, '--', ...argv];
}

export async function inNode(node: string, argv: string[], timeoutMs = 60_000): Promise<string> {
  const [cmd, ...args] = nodeCommand(node, argv);
  const { stdout } = await run(cmd!, args, { timeout: timeoutMs, maxBuffer: 16 << 20 });
  return stdout;
}

function daemonEnv(): NodeJS.ProcessEnv {
  // containerd finds its shim on PATH; nothing else of the caller's environment belongs in a node.
  // The runc shim finds the real runc through LOCALCLUSTER_RUNC (containerd passes it on to its shims).
  return {
    PATH: `${binDir()}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
    HOME: '/root',
    LOCALCLUSTER_RUNC: RUNC,
  };
}

async function startAnchor(spec: NodeSpec): Promise<void> {
  const dir = nodeDir(spec.name);
  const { netns } = nodeNames(spec.index, spec.name);
  const script = [
    'mount -t tmpfs -o mode=755 psop-run /run',
    `mount --bind '${dir}/varlib' /var/lib`,
    `mount --bind '${dir}/varlog' /var/log`,
    'exec sleep infinity',
  ].join(' && ');
  const pid = spawnDetached(
    'nsenter',
    [`--net=/run/netns/${netns}`, '--', 'unshare', '-m', '--propagation', 'slave', '--', 'sh', '-c', script],
    logFile(spec.name, 'anchor'),
    pidFile(spec.name, 'anchor'),
    { env: daemonEnv() },
  );
  const deadline = Date.now() + 10_000;
  for (;;) {
    let exe = '';
    try {
      exe = readlinkSync(`/proc/${pid}/exe`);
    } catch {
      throw new Error(
        `node ${spec.name}: its mount namespace could not be set up; see ${logFile(spec.name, 'anchor')}`,
      );
    }
    if (exe.endsWith('/sleep')) return;
    if (Date.now() > deadline) throw new Error(`node ${spec.name}: mount namespace not ready after 10 s`);
    await sleep(20);
  }
}

function startDaemon(spec: NodeSpec, daemon: (typeof DAEMONS)[number], args: string[]): void {
  const binary = daemon === 'kube-network-policies' ? netpolBinary() : binaryPath(daemon);
  const argv = nodeCommand(spec.name, [binary, ...args]);
  spawnDetached(argv[0]!, argv.slice(1), logFile(spec.name, daemon), pidFile(spec.name, daemon), {
    env: daemonEnv(),
  });
}

async function waitForContainerd(spec: NodeSpec): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (!alive(readPid(pidFile(spec.name, 'containerd'))))
      throw new Error(`node ${spec.name}: containerd exited; see ${logFile(spec.name, 'containerd')}`);
    const ok = await inNode(spec.name, [binaryPath('ctr'), '-a', CONTAINERD_SOCKET, 'version'], 5000).then(
      () => true,
      () => false,
    );
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`node ${spec.name}: containerd not answering after 30 s`);
    await sleep(100);
  }
}

export async function importImages(node: string, archive: string): Promise<void> {
  await inNode(
    node,
    [binaryPath('ctr'), '-a', CONTAINERD_SOCKET, '-n', 'k8s.io', 'images', 'import', archive],
    300_000,
  );
}

/** Whether kube-network-policies has put its rules in place: it does so once its informers synced. */
async function netpolTable(node: string): Promise<boolean> {
  return inNode(node, ['nft', 'list', 'table', 'inet', NETPOL_TABLE], 5000).then(
    () => true,
    () => false,
  );
}

async function waitForNetpol(spec: NodeSpec): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (!alive(readPid(pidFile(spec.name, 'kube-network-policies'))))
      throw new Error(
        `node ${spec.name}: kube-network-policies exited; see ${logFile(spec.name, 'kube-network-policies')}`,
      );
    if (await netpolTable(spec.name)) return;
    if (Date.now() > deadline)
      throw new Error(`node ${spec.name}: kube-network-policies has no nftables rules after 30 s`);
    await sleep(100);
  }
}

/**
 * Starts the node's processes in order: mount namespace, containerd, images, kubelet, kube-proxy and, with
 * network policies on, kube-network-policies; resolves once its rules are in place.
 */
export async function startNode(spec: NodeSpec, archive: string, o: NodeOptions): Promise<void> {
  const c = configInput(spec);
  await startAnchor(spec);
  startDaemon(spec, 'containerd', ['--config', join(c.dir, 'containerd.toml')]);
  await waitForContainerd(spec);
  await importImages(spec.name, archive);
  startDaemon(spec, 'kubelet', [
    `--config=${join(c.dir, 'kubelet.yaml')}`,
    `--kubeconfig=${c.kubeconfig}`,
    `--hostname-override=${spec.name}`,
    `--node-ip=${c.ip}`,
    '--v=1',
  ]);
  startDaemon(spec, 'kube-proxy', [`--config=${join(c.dir, 'kube-proxy.yaml')}`, '--v=0']);
  if (!o.networkPolicies) return;
  startDaemon(spec, 'kube-network-policies', [
    `--kubeconfig=${c.kubeconfig}`,
    `--hostname-override=${spec.name}`,
    // Queues are per network namespace: every node can use upstream's DaemonSet number.
    '--nfqueue-id=98',
    // The DNS race workaround is for kernels before 6.12, and no cluster DNS runs here.
    '--netfilter-bug-1766-fix=false',
    // The node's own loopback; upstream's default `:9080` would listen on the host bridge.
    '--metrics-bind-address=127.0.0.1:9080',
    '--v=1',
  ]);
  await waitForNetpol(spec);
}

/** Every process that belongs to the node: its daemons, containerd's shims, and every container. */
export function nodePids(spec: NodeSpec): number[] {
  const pids = new Set<number>();
  for (const d of [...DAEMONS, 'anchor'] as const) {
    const pid = readPid(pidFile(spec.name, d));
    if (alive(pid)) pids.add(pid!);
  }
  const anchor = readPid(pidFile(spec.name, 'anchor'));
  const mnt = alive(anchor) ? namespaceOf(anchor!, 'mnt') : undefined;
  const netnsFile = `/run/netns/${nodeNames(spec.index, spec.name).netns}`;
  // The node's network namespace in the `net:[inode]` form that /proc/<pid>/ns/net links show.
  const net = existsSync(netnsFile) ? `net:[${statSync(netnsFile).ino}]` : undefined;
  for (const pid of findPids(
    (p) =>
      (mnt !== undefined && namespaceOf(p, 'mnt') === mnt) ||
      (net !== undefined && namespaceOf(p, 'net') === net),
  ))
    pids.add(pid);
  for (const pid of cgroupPids(nodeNames(spec.index, spec.name).cgroup)) pids.add(pid);
  return [...pids];
}

/** Power loss: every process of the node dies at once; its disk (/var/lib) stays, its /run is gone. */
export async function stopNode(spec: NodeSpec): Promise<void> {
  for (let round = 0; round < 50; round++) {
    const pids = nodePids(spec).filter((p) => alive(p));
    if (pids.length === 0) return;
    for (const pid of pids) signal(pid, 'SIGKILL');
    await sleep(100);
  }
  throw new Error(`node ${spec.name}: processes still alive after SIGKILL: ${nodePids(spec).join(', ')}`);
}

/** A clean shutdown for `down`: the kubelet and kube-proxy first, then everything else at once. */
export async function shutdownNode(spec: NodeSpec): Promise<string[]> {
  // SIGTERM first: it deletes its nftables table on the way out.
  await stopPid(readPid(pidFile(spec.name, 'kube-network-policies')), 6000);
  await stopPid(readPid(pidFile(spec.name, 'kube-proxy')), 2000);
  await stopPid(readPid(pidFile(spec.name, 'kubelet')), 2000);
  await stopNode(spec);
  const left = removeCgroupRoot(nodeNames(spec.index, spec.name).cgroup);
  await deleteNodeNetwork(spec.index, spec.name);
  return left;
}

export async function nodeState(spec: NodeSpec): Promise<NodeState> {
  if (!alive(readPid(pidFile(spec.name, 'kubelet')))) return 'Stopped';
  return (await uplinkUp(spec.index, spec.name)) ? 'Running' : 'Partitioned';
}

/**
 * Power loss: every process of the node dies at once and the machine goes dark. The uplink goes down too:
 * killing the processes leaves the Pods' network namespaces (bind-mounted by the CNI) in place, and their
 * kernel would still refuse connections, which a powered-off machine never does. `restartNode` brings it up.
 */
export async function powerOffNode(spec: NodeSpec): Promise<void> {
  await stopNode(spec);
  await setUplink(spec.index, spec.name, false);
}

export async function partitionNode(spec: NodeSpec): Promise<void> {
  if ((await nodeState(spec)) === 'Stopped') throw new Error(`node ${spec.name} is stopped; start it first`);
  await setUplink(spec.index, spec.name, false);
}

export async function healNode(spec: NodeSpec): Promise<void> {
  await setUplink(spec.index, spec.name, true);
}

/** Boots a stopped node again, as after a power cycle: fresh /run, same disk, images still there. */
export async function restartNode(spec: NodeSpec, archive: string, o: NodeOptions): Promise<void> {
  if ((await nodeState(spec)) !== 'Stopped') throw new Error(`node ${spec.name} is not stopped`);
  await stopNode(spec);
  await setUplink(spec.index, spec.name, true);
  createCgroupRoot(nodeNames(spec.index, spec.name).cgroup);
  await startNode(spec, archive, o);
}

/** The text of CRI log lines (`<time> <stream> <P|F> <text>`), joined back into the program's output. */
export function criLogText(raw: string): string {
  let out = '';
  for (const line of raw.split('\n')) {
    const m = /^\S+ (?:stdout|stderr) ([PF]) ?(.*)$/.exec(line);
    if (m) out += m[2] + (m[1] === 'F' ? '\n' : '');
  }
  return out;
}

export function readLog(file: string): string {
  return criLogText(readFileSync(file, 'utf8'));
}
