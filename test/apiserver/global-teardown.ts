import { execFileSync } from 'node:child_process';

export default async function globalTeardown(): Promise<void> {
  execFileSync('npx', ['tsx', 'test/apiserver/control-plane.ts', 'down'], { stdio: 'inherit' });
}
