import { execFileSync } from 'node:child_process';
import { skipArgoCd } from './argocd-flag.js';

// One cluster for all integration test files: `up` is idempotent and builds the control plane on first use
// (its progress is printed here; a cold build of Kubernetes and containerd takes 4-10 minutes, Argo CD's
// about 10 more).
export default async function globalSetup(): Promise<void> {
  const argocd = skipArgoCd() ? [] : ['--argocd'];
  execFileSync('npx', ['tsx', 'tools/localcluster/src/cli.ts', 'up', ...argocd], { stdio: 'inherit' });
}
