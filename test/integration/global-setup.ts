import { execFileSync } from 'node:child_process';

// One cluster for all integration test files: `up` is idempotent and builds the control plane on first use
// (its progress is printed here; a cold build of Kubernetes, containerd and kube-network-policies takes
// about 20 minutes on 2 cores). Argo CD is started by the GitOps test, which runs last (sequencer.js):
// `npm test` builds it in the background meanwhile.
export default async function globalSetup(): Promise<void> {
  execFileSync('npx', ['tsx', 'tools/localcluster/src/cli.ts', 'up'], { stdio: 'inherit' });
}
