import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  BRIDGE_IP,
  BRIDGE_NAME,
  NETNS_PREFIX,
  POD_PREFIX_LENGTH,
  netnsName,
  podMac,
  vethNames,
} from './addressing.js';

const run = promisify(execFile);

async function ip(...args: string[]): Promise<void> {
  try {
    await run('ip', args);
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? String(err);
    throw new Error(`ip ${args.join(' ')} failed: ${stderr.trim()}`);
  }
}

async function ipQuiet(...args: string[]): Promise<void> {
  await run('ip', args).catch(() => undefined);
}

/** Network namespaces need root (CAP_NET_ADMIN); say so instead of failing on the first `ip` call. */
export function assertCanCreateNamespaces(): void {
  if (process.getuid?.() !== 0) {
    throw new Error(
      'the local cluster gives every Pod its own network namespace and needs root (CAP_NET_ADMIN); run it as root',
    );
  }
}

/** The bridge every Pod's veth joins; the host talks to Pods (and Pods to the API server) through it. */
export async function createBridge(): Promise<void> {
  await ipQuiet('link', 'del', BRIDGE_NAME);
  await ip('link', 'add', BRIDGE_NAME, 'type', 'bridge');
  await ip('addr', 'add', `${BRIDGE_IP}/${POD_PREFIX_LENGTH}`, 'dev', BRIDGE_NAME);
  await ip('link', 'set', BRIDGE_NAME, 'up');
}

export async function addNodeAddress(address: string): Promise<void> {
  await ipQuiet('addr', 'add', `${address}/32`, 'dev', BRIDGE_NAME);
}

/** A Pod's own namespace with eth0 at `podIp` and a default route via the bridge. */
export async function createPodNetwork(podIp: string): Promise<string> {
  const ns = netnsName(podIp);
  const { host, pod } = vethNames(podIp);
  await ipQuiet('netns', 'del', ns);
  await ipQuiet('link', 'del', host);
  await ip('netns', 'add', ns);
  await ip('link', 'add', host, 'type', 'veth', 'peer', 'name', pod, 'netns', ns);
  await ip('link', 'set', host, 'master', BRIDGE_NAME);
  await ip('link', 'set', host, 'up');
  await ip('-n', ns, 'link', 'set', pod, 'address', podMac(podIp));
  await ip('-n', ns, 'addr', 'add', `${podIp}/${POD_PREFIX_LENGTH}`, 'dev', pod);
  await ip('-n', ns, 'link', 'set', pod, 'up');
  await ip('-n', ns, 'link', 'set', 'lo', 'up');
  await ip('-n', ns, 'route', 'add', 'default', 'via', BRIDGE_IP);
  return ns;
}

export async function deletePodNetwork(podIp: string): Promise<void> {
  await ipQuiet('link', 'del', vethNames(podIp).host);
  await ipQuiet('netns', 'del', netnsName(podIp));
}

/** Partition: the Pod's link goes down, so it is unreachable from everywhere while its process runs. */
export async function setPodLink(podIp: string, up: boolean): Promise<void> {
  await ip('link', 'set', vethNames(podIp).host, up ? 'up' : 'down');
}

/** Removes every namespace and link a crashed run may have left; safe to repeat. */
export async function cleanupNetwork(): Promise<void> {
  const { stdout } = await run('ip', ['netns', 'list']).catch(() => ({ stdout: '' }));
  for (const line of stdout.split('\n')) {
    const ns = line.split(' ')[0];
    if (ns?.startsWith(NETNS_PREFIX)) await ipQuiet('netns', 'del', ns);
  }
  const links = await run('ip', ['-o', 'link', 'show']).catch(() => ({ stdout: '' }));
  for (const m of links.stdout.matchAll(/^\d+: (psh\d+x\d+)[@:]/gm)) await ipQuiet('link', 'del', m[1]!);
  await ipQuiet('link', 'del', BRIDGE_NAME);
}
