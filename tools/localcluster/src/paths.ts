import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The Kubernetes release the control plane is built from; must match controlplane/go.mod. */
export const KUBE_VERSION = 'v1.36.3';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const controlPlaneModule = join(repoRoot, 'tools', 'localcluster', 'controlplane');

/** Binaries are large and slow to build: cache them outside the repo, keyed by release. */
export function cacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'pull-state-operator', `controlplane-${KUBE_VERSION}`);
}

/** Everything a running cluster writes (git-ignored). */
export const localDir = join(repoRoot, '.local');
export const clusterDir = join(localDir, 'cluster');
export const kubeconfigPath = join(localDir, 'kubeconfig');
export const daemonStatePath = join(clusterDir, 'daemon.json');
export const daemonLogPath = join(clusterDir, 'daemon.log');
export const podLogDir = join(clusterDir, 'pods');
