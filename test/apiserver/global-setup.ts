import { execFileSync } from 'node:child_process';

// etcd and kube-apiserver for every test file of the tier (about 10 s when the binaries are cached; they
// are built on first use, or waited for while `npm test` builds them in the background).
export default async function globalSetup(): Promise<void> {
  execFileSync('npx', ['tsx', 'test/apiserver/control-plane.ts', 'up'], { stdio: 'inherit' });
}
