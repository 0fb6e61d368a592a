import { execFileSync } from 'node:child_process';

// One cluster for all integration test files: `up` is idempotent and builds the control plane on first use
// (its progress is printed here; a cold build of Kubernetes and containerd takes 4-10 minutes, Argo CD's
// about 10 more).
export default async function globalSetup(): Promise<void> {
  // SKIP_ARGOCD=1 (never in CI) leaves Argo CD out of a local run; jest.config.js drops the GitOps test then.
  const skipArgoCd = process.env.SKIP_ARGOCD === '1' && process.env.CI !== 'true';
  const argocd = skipArgoCd ? [] : ['--argocd'];
  execFileSync('npx', ['tsx', 'tools/localcluster/src/cli.ts', 'up', ...argocd], { stdio: 'inherit' });
}
