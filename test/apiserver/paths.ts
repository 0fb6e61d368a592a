import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The tier's scratch directory (git-ignored): etcd's data, the API server's certificates, logs, kubeconfig. */
export const TIER_DIR = join(fileURLToPath(new URL('../..', import.meta.url)), '.local', 'apiserver-tier');
export const KUBECONFIG = join(TIER_DIR, 'admin.kubeconfig');
