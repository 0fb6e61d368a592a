import { isIP } from 'node:net';

/**
 * Pod and node addresses of IPv4, IPv6 and dual-stack clusters. Kubernetes writes `status.podIP` (the
 * primary family on a dual-stack cluster) in canonical form; the helpers and the controller compare and
 * print addresses only through these functions, so `fd00::5` and `FD00:0::5` are one address and an IPv6
 * address is bracketed wherever a port follows it.
 */

/** The canonical text of an IP address (IPv6 lower-case with zeros compressed), or undefined if it is none. */
export function canonicalIP(text: string): string | undefined {
  const family = isIP(text);
  if (family === 4) return text;
  // A zone (fe80::1%eth0) names an interface of one machine: never an address of a Pod.
  if (family !== 6 || text.includes('%')) return undefined;
  return new URL(`http://[${text}]/`).hostname.slice(1, -1);
}

export function sameIP(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined) return false;
  const ca = canonicalIP(a);
  return ca !== undefined && ca === canonicalIP(b);
}

/** `ip:port`, or `[ip]:port` for IPv6: the authority of a URL and the text of a log line. */
export function hostPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

export function httpURL(scheme: 'http' | 'https', ip: string, port: number, path = ''): string {
  return `${scheme}://${hostPort(ip, port)}${path}`;
}

/** The eight 16-bit groups of a valid IPv6 address. */
function ipv6Groups(ip: string): number[] {
  const [head, tail] = canonicalIP(ip)!.split('::') as [string, string | undefined];
  const part = (s: string | undefined) => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const h = part(head);
  const t = part(tail);
  return tail === undefined ? h : [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
}

export function isLoopback(ip: string): boolean {
  const family = isIP(ip);
  if (family === 4) return ip.startsWith('127.');
  return family === 6 && canonicalIP(ip) === '::1';
}

/** Cloud metadata and host services outside the link-local range: AWS, GCP and Oracle (IPv6), Alibaba, Azure. */
const METADATA = new Set([
  'fd00:ec2::254',
  'fd20:ce::254',
  'fd00:c1::a9fe:a9fe',
  '100.100.100.200',
  '168.63.129.16',
]);

/**
 * Addresses no Pod has and no pull or probe may reach, whoever asks: unspecified, loopback, link-local (the
 * clouds' metadata service), multicast, broadcast and reserved. For IPv6 also the ranges that lead to IPv4
 * (mapped, compatible, NAT64, 6to4: 64:ff9b::a9fe:a9fe is 169.254.169.254 behind a NAT64 gateway), the
 * deprecated site-local range, and the clouds' metadata addresses outside link-local. Not an IP address at
 * all counts as one too.
 */
export function notAPodIP(ip: string): boolean {
  const family = isIP(ip);
  if (family === 4) {
    const [a, b] = ip.split('.').map(Number) as [number, number];
    return a === 0 || a === 127 || (a === 169 && b === 254) || a >= 224 || METADATA.has(ip);
  }
  if (family !== 6 || canonicalIP(ip) === undefined) return true;
  const g = ipv6Groups(ip);
  const [g0, g1] = g as [number, number];
  const zeros = (n: number) => g.slice(0, n).every((x) => x === 0);
  return (
    (zeros(5) && (g[5] === 0 || g[5] === 0xffff)) || // ::, ::1, IPv4-compatible, IPv4-mapped
    (g0 & 0xffc0) === 0xfe80 || // link-local
    (g0 & 0xffc0) === 0xfec0 || // site-local (deprecated)
    (g0 & 0xff00) === 0xff00 || // multicast
    (g0 === 0x64 && g1 === 0xff9b) || // NAT64, well-known and local-use (64:ff9b:1::/48)
    g0 === 0x2002 || // 6to4
    METADATA.has(canonicalIP(ip)!)
  );
}

/** A flag pattern (see src/cli/flags.ts) that accepts an IPv4 or IPv6 address. */
export const IP_ADDRESS = { test: (value: string): boolean => canonicalIP(value) !== undefined };

/**
 * The address to listen on for a Pod whose primary address is `podIP`: the kubelet's probes, the helpers and
 * Prometheus reach a Pod at `status.podIP`, whose family is the cluster's primary one. IPv4 when not known.
 */
export function wildcardAddress(podIP: string | undefined): '::' | '0.0.0.0' {
  return podIP !== undefined && isIP(podIP) === 6 ? '::' : '0.0.0.0';
}
