import { execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

/** The operator's Pod logs and every node's daemon logs outlive the cluster, so a failed CI run can be read. */
const keptLogs = '.local/test-logs';

function keepLogs(): void {
  const nodesDir = '.local/cluster/nodes';
  if (!existsSync(nodesDir)) return;
  rmSync(keptLogs, { recursive: true, force: true });
  mkdirSync(keptLogs, { recursive: true });
  for (const f of readdirSync('.local/cluster').filter((f) => f.endsWith('.log')))
    copyFileSync(join('.local/cluster', f), join(keptLogs, f));
  for (const node of readdirSync(nodesDir)) {
    // containerd, kubelet and kube-proxy explain Pods that never started or never became Ready.
    const daemons = join(nodesDir, node, 'logs');
    if (existsSync(daemons)) cpSync(daemons, join(keptLogs, node, 'daemons'), { recursive: true });
    const pods = join(nodesDir, node, 'varlog', 'pods');
    if (!existsSync(pods)) continue;
    for (const pod of readdirSync(pods).filter((p) => p.startsWith('pull-state-operator-system_')))
      cpSync(join(pods, pod), join(keptLogs, node, pod), { recursive: true });
  }
}

export default async function globalTeardown(): Promise<void> {
  keepLogs();
  // KEEP_CLUSTER=1 leaves the cluster running for debugging after a failed test.
  if (process.env.KEEP_CLUSTER === '1') return;
  execFileSync('npx', ['tsx', 'tools/localcluster/src/cli.ts', 'down'], { stdio: 'inherit' });
}
