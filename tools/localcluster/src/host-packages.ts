import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/**
 * Debian packages the local cluster needs from the host, by a file each installs. runc and the CNI plugins come from
 * Debian because they build with cgo or are plain binaries; nftables is what kube-proxy's nftables mode
 * drives; iptables and conntrack are what the kubelet and the CNI portmap plugin call.
 */
export const HOST_PACKAGES: Record<string, string> = {
  runc: '/usr/sbin/runc',
  'containernetworking-plugins': '/usr/lib/cni/bridge',
  nftables: '/usr/sbin/nft',
  iptables: '/usr/sbin/iptables',
  conntrack: '/usr/sbin/conntrack',
  iproute2: '/usr/sbin/ip',
  'util-linux': '/usr/bin/nsenter',
  // The API server's client certificate for the kubelets.
  openssl: '/usr/bin/openssl',
  // Not for the nodes: the observability test scrapes the operator with a real Prometheus and checks the
  // alert rules with promtool.
  prometheus: '/usr/bin/promtool',
  // Not for the nodes either: Argo CD (`up --argocd`) keeps its cache in Redis and its repo server runs git.
  'redis-server': '/usr/bin/redis-server',
  git: '/usr/bin/git',
};

export const RUNC = HOST_PACKAGES.runc!;
export const CNI_BIN_DIR = '/usr/lib/cni';

export function missingPackages(exists: (path: string) => boolean = existsSync): string[] {
  return Object.entries(HOST_PACKAGES)
    .filter(([, file]) => !exists(file))
    .map(([pkg]) => pkg);
}

/** Installs what is missing with apt-get, so a new machine needs nothing done by hand. */
export function ensureHostPackages(log: (line: string) => void = console.log): void {
  const missing = missingPackages();
  if (missing.length === 0) return;
  if (!existsSync('/usr/bin/apt-get')) {
    throw new Error(
      `the local cluster needs these Debian packages and there is no apt-get: ${missing.join(', ')}`,
    );
  }
  log(`localcluster: installing Debian packages: ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], {
    stdio: 'inherit',
    env,
  });
  const still = missingPackages();
  if (still.length) throw new Error(`apt-get did not install: ${still.join(', ')}`);
}
