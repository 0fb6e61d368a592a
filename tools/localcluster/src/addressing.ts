// Pure address and name planning for the local cluster's network, kept apart from the `ip` commands so it
// is easy to test. Every node is a network namespace on one host bridge; Pods live behind each node's own
// CNI bridge on the node's podCIDR.

/** The host bridge every node's uplink joins; the API server listens on its address. */
export const BRIDGE_NAME = 'psop0';
export const CLUSTER_CIDR = '10.244.0.0/16';
export const BRIDGE_IP = '10.244.0.1';
export const NODE_PREFIX_LENGTH = 24;
export const SERVICE_CIDR = '10.96.0.0/24';
/** Prefix of every name the cluster gives to host-wide objects (netns, links, cgroups), for cleanup. */
export const NAME_PREFIX = 'psop-';

export function checkIndex(nodeIndex: number): void {
  if (!Number.isInteger(nodeIndex) || nodeIndex < 0 || nodeIndex > 200)
    throw new Error(`node index ${nodeIndex} out of range 0..200`);
}

/** Node n (0 = control plane) sits at 10.244.0.(10+n) on the host bridge. */
export function nodeIp(nodeIndex: number): string {
  checkIndex(nodeIndex);
  return `10.244.0.${nodeIndex + 10}`;
}

/** Node n owns the Pod network 10.244.(n+1).0/24. */
export function podCidr(nodeIndex: number): string {
  checkIndex(nodeIndex);
  return `10.244.${nodeIndex + 1}.0/24`;
}

/** Network namespace, cgroup root and host-side link of a node; link names are limited to 15 characters. */
export function nodeNames(nodeIndex: number, name: string): { netns: string; cgroup: string; link: string } {
  checkIndex(nodeIndex);
  return { netns: NAME_PREFIX + name, cgroup: NAME_PREFIX + name, link: `psopn${nodeIndex}` };
}

export function clusterNodeNames(workers: number): string[] {
  return ['control-plane', ...Array.from({ length: workers }, (_, i) => `worker-${i + 1}`)];
}
