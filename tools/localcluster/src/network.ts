import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  BRIDGE_IP,
  BRIDGE_NAME,
  NAME_PREFIX,
  NODE_PREFIX_LENGTH,
  nodeIp,
  nodeNames,
  podCidr,
} from './addressing.js';

const run = promisify(execFile);

async function ip(...args: string[]): Promise<string> {
  try {
    return (await run('ip', args)).stdout;
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? String(err);
    throw new Error(`ip ${args.join(' ')} failed: ${stderr.trim()}`);
  }
}

async function ipQuiet(...args: string[]): Promise<void> {
  await run('ip', args).catch(() => undefined);
}

/** Network namespaces, cgroups and mounts need root; say so instead of failing on the first `ip` call. */
export function assertRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new Error(
      'the local cluster runs real nodes (network namespaces, cgroups, containerd) and needs root',
    );
  }
}

/** The host bridge every node's uplink joins; the API server and the tests reach nodes and Pods through it. */
export async function createBridge(): Promise<void> {
  await ipQuiet('link', 'del', BRIDGE_NAME);
  await ip('link', 'add', BRIDGE_NAME, 'type', 'bridge');
  await ip('addr', 'add', `${BRIDGE_IP}/${NODE_PREFIX_LENGTH}`, 'dev', BRIDGE_NAME);
  await ip('link', 'set', BRIDGE_NAME, 'up');
}

/**
 * A node's network namespace with its uplink `eth0` on the host bridge, forwarding on (it routes for its
 * Pods), a route to every other node's podCIDR via that node (the host itself never forwards), and a host
 * route to the node's own podCIDR so the host reaches every Pod.
 */
export async function createNodeNetwork(index: number, name: string, allNodes: number): Promise<void> {
  const { netns, link } = nodeNames(index, name);
  await ipQuiet('netns', 'del', netns);
  await ipQuiet('link', 'del', link);
  await ip('netns', 'add', netns);
  await ip('link', 'add', link, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns);
  await ip('link', 'set', link, 'master', BRIDGE_NAME, 'up');
  await ip('-n', netns, 'addr', 'add', `${nodeIp(index)}/${NODE_PREFIX_LENGTH}`, 'dev', 'eth0');
  await ip('-n', netns, 'link', 'set', 'eth0', 'up');
  await ip('-n', netns, 'link', 'set', 'lo', 'up');
  await ip('-n', netns, 'route', 'add', 'default', 'via', BRIDGE_IP);
  for (let other = 0; other < allNodes; other++) {
    if (other !== index) await ip('-n', netns, 'route', 'add', podCidr(other), 'via', nodeIp(other));
  }
  await run('ip', ['netns', 'exec', netns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  await ipQuiet('route', 'del', podCidr(index));
  await ip('route', 'add', podCidr(index), 'via', nodeIp(index), 'dev', BRIDGE_NAME);
}

/** Partition: the node's uplink goes down; everything inside the node keeps running and talking locally. */
export async function setUplink(index: number, name: string, up: boolean): Promise<void> {
  await ip('link', 'set', nodeNames(index, name).link, up ? 'up' : 'down');
}

export async function uplinkUp(index: number, name: string): Promise<boolean> {
  const out = await ip('-o', 'link', 'show', nodeNames(index, name).link).catch(() => '');
  return /state UP|,UP[,>]/.test(out) && !/state DOWN/.test(out);
}

export async function deleteNodeNetwork(index: number, name: string): Promise<void> {
  const { netns, link } = nodeNames(index, name);
  await ipQuiet('route', 'del', podCidr(index));
  await ipQuiet('link', 'del', link);
  await ipQuiet('netns', 'del', netns);
}

/** What the cluster made on the host and is still there: namespaces, links, routes (for `down` and its test). */
export async function leftoverNetwork(): Promise<string[]> {
  const left: string[] = [];
  const netns = await run('ip', ['netns', 'list']).catch(() => ({ stdout: '' }));
  for (const line of netns.stdout.split('\n')) {
    const ns = line.split(' ')[0];
    if (ns?.startsWith(NAME_PREFIX)) left.push(`netns ${ns}`);
  }
  const links = await run('ip', ['-o', 'link', 'show']).catch(() => ({ stdout: '' }));
  for (const m of links.stdout.matchAll(/^\d+: (psop\w*)[@:]/gm)) left.push(`link ${m[1]}`);
  const routes = await run('ip', ['route', 'show']).catch(() => ({ stdout: '' }));
  for (const line of routes.stdout.split('\n'))
    if (/^10\.244\./.test(line)) left.push(`route ${line.trim()}`);
  return left;
}

/** Removes every namespace, link and route a run may have left; safe to repeat. */
export async function cleanupNetwork(): Promise<void> {
  const netns = await run('ip', ['netns', 'list']).catch(() => ({ stdout: '' }));
  for (const line of netns.stdout.split('\n')) {
    const ns = line.split(' ')[0];
    if (ns?.startsWith(NAME_PREFIX)) await ipQuiet('netns', 'del', ns);
  }
  const links = await run('ip', ['-o', 'link', 'show']).catch(() => ({ stdout: '' }));
  for (const m of links.stdout.matchAll(/^\d+: (psop\w*)[@:]/gm)) await ipQuiet('link', 'del', m[1]!);
  const routes = await run('ip', ['route', 'show']).catch(() => ({ stdout: '' }));
  for (const line of routes.stdout.split('\n'))
    if (/^10\.244\./.test(line)) await ipQuiet('route', 'del', line.split(' ')[0]!);
}
