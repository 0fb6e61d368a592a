import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The Kubernetes release the cluster is built from; must match controlplane/go.mod. */
export const KUBE_VERSION = 'v1.36.3';
/** The containerd release of the nodes; must match noderuntime/go.mod. */
export const CONTAINERD_VERSION = 'v2.4.2';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const controlPlaneModule = join(repoRoot, 'tools', 'localcluster', 'controlplane');
export const nodeRuntimeModule = join(repoRoot, 'tools', 'localcluster', 'noderuntime');

/** Binaries are large and slow to build: cache them outside the repo, keyed by release. */
export function cacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'pull-state-operator', `localcluster-${KUBE_VERSION}-containerd-${CONTAINERD_VERSION}`);
}

/** Everything a running cluster writes (git-ignored). */
export const localDir = join(repoRoot, '.local');
export const clusterDir = join(localDir, 'cluster');
export const kubeconfigPath = join(localDir, 'kubeconfig');
export const clusterStatePath = join(clusterDir, 'state.json');
export const imagesDir = join(localDir, 'images');
export const nodesDir = join(clusterDir, 'nodes');
export const nodeDir = (name: string): string => join(nodesDir, name);
