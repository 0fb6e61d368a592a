import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

/** The operator's Pod logs outlive the cluster here, so a failed run in CI can still be diagnosed. */
const keptLogs = '.local/test-logs';

function keepOperatorLogs(): void {
  const nodesDir = '.local/cluster/nodes';
  if (!existsSync(nodesDir)) return;
  rmSync(keptLogs, { recursive: true, force: true });
  mkdirSync(keptLogs, { recursive: true });
  // The simulated nodes' own log (kubelets, faults) explains Pods that never started.
  if (existsSync('.local/cluster/daemon.log'))
    copyFileSync('.local/cluster/daemon.log', join(keptLogs, 'daemon.log'));
  for (const node of readdirSync(nodesDir)) {
    const podsDir = join(nodesDir, node, 'pods');
    if (!existsSync(podsDir)) continue;
    for (const pod of readdirSync(podsDir).filter((p) => p.startsWith('pull-state-operator-system_'))) {
      const logs = readdirSync(join(podsDir, pod)).filter((f) => f.endsWith('.log'));
      mkdirSync(join(keptLogs, node, pod), { recursive: true });
      for (const f of logs) copyFileSync(join(podsDir, pod, f), join(keptLogs, node, pod, f));
    }
  }
}

export default async function globalTeardown(): Promise<void> {
  keepOperatorLogs();
  // KEEP_CLUSTER=1 leaves the cluster running for debugging after a failed test.
  if (process.env.KEEP_CLUSTER === '1') return;
  execFileSync('npx', ['tsx', 'tools/localcluster/src/cli.ts', 'down'], { stdio: 'inherit' });
}
