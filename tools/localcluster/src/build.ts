import { spawn, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { KUBE_VERSION, cacheDir, controlPlaneModule } from './paths.js';

export const BINARIES = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler'] as const;
export type Binary = (typeof BINARIES)[number];

/** A digest of the wrapper module, so an edited go.mod or main.go rebuilds instead of reusing stale binaries. */
function sourceDigest(): string {
  const hash = createHash('sha256');
  const files = ['go.mod', 'go.sum', ...BINARIES.map((b) => join('cmd', b, 'main.go'))];
  for (const f of files) hash.update(f).update(readFileSync(join(controlPlaneModule, f)));
  return hash.digest('hex').slice(0, 16);
}

export function binaryPath(name: Binary): string {
  return join(cacheDir(), 'bin', name);
}

function cached(): boolean {
  const stamp = join(cacheDir(), 'stamp');
  return (
    existsSync(stamp) &&
    readFileSync(stamp, 'utf8').trim() === sourceDigest() &&
    BINARIES.every((b) => existsSync(binaryPath(b)))
  );
}

function ldflags(): string {
  const [major, minor] = KUBE_VERSION.slice(1).split('.');
  const set = (pkg: string, key: string, value: string) => `-X ${pkg}.${key}=${value}`;
  const flags = ['-s', '-w'];
  for (const pkg of ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version']) {
    flags.push(
      set(pkg, 'gitVersion', KUBE_VERSION),
      set(pkg, 'gitMajor', major!),
      set(pkg, 'gitMinor', minor!),
    );
    flags.push(set(pkg, 'gitTreeState', 'clean'));
  }
  return flags.join(' ');
}

/**
 * Builds the control plane into the cache unless a build of the same sources is there. The cold build
 * compiles about 2,000 Go packages; progress is printed as packages complete.
 */
export async function ensureControlPlane(log: (line: string) => void = console.log): Promise<void> {
  if (cached()) return;
  const started = Date.now();
  const out = cacheDir();
  const staging = join(out, 'bin.partial');
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  const env = { ...process.env, GOTOOLCHAIN: 'local', CGO_ENABLED: '0', GOFLAGS: '-mod=mod' };

  log(
    `localcluster: building Kubernetes ${KUBE_VERSION} control plane (etcd, kube-apiserver, kube-controller-manager,`,
  );
  log('localcluster: kube-scheduler) from Go modules into ' + out);
  log(
    'localcluster: a cold build downloads ~1 GB of modules and takes 15-30 minutes on 2 cores; it is cached afterwards',
  );
  let total = 0;
  try {
    const deps = execFileSync('go', ['list', '-deps', './cmd/...'], {
      cwd: controlPlaneModule,
      env,
      maxBuffer: 64 << 20,
    });
    total = deps.toString().split('\n').filter(Boolean).length;
  } catch {
    // Only the progress total depends on this; the build reports its own errors.
  }
  const child = spawn(
    'go',
    ['build', '-v', '-trimpath', '-ldflags', ldflags(), '-o', staging + '/', './cmd/...'],
    {
      cwd: controlPlaneModule,
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let done = 0;
  let lastReport = 0;
  const errors: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => {
    // `go build -v` prints each package as it is compiled; anything with a space is an error or a note.
    if (/^\S+$/.test(line)) done++;
    else errors.push(line);
    const now = Date.now();
    if (now - lastReport > 15_000) {
      lastReport = now;
      const pct = total > 0 ? ` (~${Math.min(99, Math.round((done / total) * 100))}%)` : '';
      log(
        `localcluster: build ${Math.round((now - started) / 1000)}s: ${done}${total ? '/' + total : ''} packages${pct}`,
      );
    }
  });
  const code: number = await new Promise((resolve) => child.on('close', (c) => resolve(c ?? 1)));
  if (code !== 0) {
    throw new Error(`control plane build failed (go build exit ${code}):\n${errors.slice(-40).join('\n')}`);
  }
  mkdirSync(join(out, 'bin'), { recursive: true });
  for (const f of readdirSync(staging)) renameSync(join(staging, f), join(out, 'bin', f));
  rmSync(staging, { recursive: true, force: true });
  writeFileSync(join(out, 'stamp'), sourceDigest() + '\n');
  log(`localcluster: control plane built in ${Math.round((Date.now() - started) / 1000)}s`);
}
