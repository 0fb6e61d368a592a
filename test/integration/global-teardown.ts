import { execFileSync } from 'node:child_process';

export default async function globalTeardown(): Promise<void> {
  // KEEP_CLUSTER=1 leaves the cluster running for debugging after a failed test.
  if (process.env.KEEP_CLUSTER === '1') return;
  execFileSync('npx', ['tsx', 'tools/localcluster/src/cli.ts', 'down'], { stdio: 'inherit' });
}
