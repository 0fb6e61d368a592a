import { execFileSync } from 'node:child_process';

// One cluster for all integration test files: `up` is idempotent and builds the control plane on first use
// (its progress is printed here; a cold build of Kubernetes and containerd takes 4-10 minutes).
export default async function globalSetup(): Promise<void> {
  execFileSync('npx', ['tsx', 'tools/localcluster/src/cli.ts', 'up'], { stdio: 'inherit' });
}
