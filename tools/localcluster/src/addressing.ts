// Pure address planning for the Pod network, kept apart from the `ip` commands so it is easy to test.

/** The host side of the Pod network: the bridge address, where Pods reach the API server. */
export const BRIDGE_NAME = 'psop0';
export const NETNS_PREFIX = 'psop-';
export const POD_CIDR_PREFIX = '10.244';
export const BRIDGE_IP = `${POD_CIDR_PREFIX}.0.1`;
export const POD_PREFIX_LENGTH = 16;

/** Node n (0 = control plane) owns 10.244.(n+1).0/24; host 1..254 in it are Pod IPs. */
export function podIp(nodeIndex: number, slot: number): string {
  if (nodeIndex < 0 || nodeIndex > 250) throw new Error(`node index ${nodeIndex} out of range 0..250`);
  if (slot < 1 || slot > 254) throw new Error(`pod slot ${slot} out of range 1..254`);
  return `${POD_CIDR_PREFIX}.${nodeIndex + 1}.${slot}`;
}

/** Node IPs (InternalIP) sit in 10.244.0.0/24 beside the bridge, so helpers and kubelets look like hosts. */
export function nodeIp(nodeIndex: number): string {
  return `${POD_CIDR_PREFIX}.0.${nodeIndex + 10}`;
}

/** Lowest free slot of a node, or undefined when the node's /24 is full. */
export function freeSlot(used: ReadonlySet<number>): number | undefined {
  for (let s = 1; s <= 254; s++) if (!used.has(s)) return s;
  return undefined;
}

/** Interface names are limited to 15 characters; derive short unique ones from the Pod IP. */
export function vethNames(ip: string): { host: string; pod: string } {
  const [, , c, d] = ip.split('.');
  return { host: `psh${c}x${d}`, pod: 'eth0' };
}

/**
 * A Pod's MAC derived from its IP (the CNI bridge plugin's 0a:58 scheme). A replacement that reuses an IP
 * then also has the old MAC, so neighbours' ARP caches stay right; with random MACs every peer would send
 * to the dead Pod's address for ~8 s until its ARP entry failed.
 */
export function podMac(ip: string): string {
  return ['0a', '58', ...ip.split('.').map((o) => Number(o).toString(16).padStart(2, '0'))].join(':');
}

export function netnsName(ip: string): string {
  return NETNS_PREFIX + ip.replace(/\./g, '-');
}
