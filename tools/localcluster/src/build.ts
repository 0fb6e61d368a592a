import { spawn, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { withBuildLock } from './build-lock.js';
import {
  CONTAINERD_VERSION,
  KUBE_VERSION,
  cacheDir,
  controlPlaneModule,
  nodeRuntimeModule,
} from './paths.js';

const CONTROL_PLANE = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler'] as const;
const NODE_BINARIES = ['kubelet', 'kube-proxy'] as const;
const CONTAINERD_BINARIES = ['containerd', 'ctr', 'containerd-shim-runc-v2'] as const;
const OWN_BINARIES = ['pause', 'runc-shim'] as const;
const BINARIES = [...CONTROL_PLANE, ...NODE_BINARIES, ...CONTAINERD_BINARIES, ...OWN_BINARIES] as const;
export type Binary = (typeof BINARIES)[number];

/** Every file the binaries are built from, so an edit rebuilds instead of reusing stale binaries. */
function sourceFiles(): string[] {
  const files: string[] = [];
  for (const mod of [controlPlaneModule, nodeRuntimeModule]) {
    for (const f of ['go.mod', 'go.sum']) if (existsSync(join(mod, f))) files.push(join(mod, f));
    for (const cmd of readdirSync(join(mod, 'cmd')).sort()) files.push(join(mod, 'cmd', cmd, 'main.go'));
  }
  return files;
}

/** One cache key for all binaries: a digest of every source file plus the flags they are built with. */
function sourceDigest(): string {
  const hash = createHash('sha256');
  for (const f of sourceFiles()) hash.update(f.slice(f.indexOf('tools/'))).update(readFileSync(f));
  hash.update(kubeLdflags()).update(containerdLdflags());
  return hash.digest('hex').slice(0, 16);
}

export function binaryPath(name: Binary): string {
  return join(cacheDir(), 'bin', name);
}

export function binDir(): string {
  return join(cacheDir(), 'bin');
}

function cached(): boolean {
  const stamp = join(cacheDir(), 'stamp');
  return (
    existsSync(stamp) &&
    readFileSync(stamp, 'utf8').trim() === sourceDigest() &&
    BINARIES.every((b) => existsSync(binaryPath(b)))
  );
}

function kubeLdflags(): string {
  const [major, minor] = KUBE_VERSION.slice(1).split('.');
  const flags = ['-s', '-w'];
  for (const pkg of ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version']) {
    flags.push(
      `-X ${pkg}.gitVersion=${KUBE_VERSION}`,
      `-X ${pkg}.gitMajor=${major}`,
      `-X ${pkg}.gitMinor=${minor}`,
      `-X ${pkg}.gitTreeState=clean`,
    );
  }
  return flags.join(' ');
}

function containerdLdflags(): string {
  const pkg = 'github.com/containerd/containerd/v2/version';
  return `-s -w -X ${pkg}.Version=${CONTAINERD_VERSION} -X ${pkg}.Revision=localcluster`;
}

export interface GoBuild {
  what: string;
  module: string;
  packages: string[];
  tags?: string;
  ldflags: string;
  /** A Go release the go command fetches from the module proxy when the module needs a newer one. */
  toolchain?: string;
  /** Further flags for `go list` and `go build`, e.g. an alternative go.mod (`-modfile`). */
  flags?: string[];
}

const CONTAINERD = 'github.com/containerd/containerd/v2/cmd';
const builds: GoBuild[] = [
  {
    what: `Kubernetes ${KUBE_VERSION} (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy)`,
    module: controlPlaneModule,
    packages: ['./cmd/...'],
    ldflags: kubeLdflags(),
  },
  {
    what: `containerd ${CONTAINERD_VERSION} and ctr`,
    module: nodeRuntimeModule,
    packages: [`${CONTAINERD}/containerd`, `${CONTAINERD}/ctr`],
    tags: 'urfave_cli_no_docs no_btrfs',
    ldflags: containerdLdflags(),
  },
  {
    // The shim is built without gRPC, as upstream builds it, so it stays small and quick to start.
    what: `containerd-shim-runc-v2 ${CONTAINERD_VERSION}`,
    module: nodeRuntimeModule,
    packages: [`${CONTAINERD}/containerd-shim-runc-v2`],
    tags: 'urfave_cli_no_docs no_grpc',
    ldflags: containerdLdflags(),
  },
  {
    what: 'the pause program and the runc shim of the local cluster',
    module: nodeRuntimeModule,
    packages: OWN_BINARIES.map((b) => `./cmd/${b}`),
    ldflags: '-s -w',
  },
];

export async function goBuild(b: GoBuild, out: string, log: (line: string) => void): Promise<void> {
  const started = Date.now();
  const env = { ...process.env, GOTOOLCHAIN: b.toolchain ?? 'local', CGO_ENABLED: '0', GOFLAGS: '-mod=mod' };
  const tags = [...(b.tags ? ['-tags', b.tags] : []), ...(b.flags ?? [])];
  log(`localcluster: building ${b.what}`);
  let total = 0;
  try {
    const deps = execFileSync('go', ['list', ...tags, '-deps', ...b.packages], {
      cwd: b.module,
      env,
      maxBuffer: 64 << 20,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    total = deps.toString().split('\n').filter(Boolean).length;
  } catch {
    // Only the progress total depends on this; the build reports its own errors.
  }
  const child = spawn(
    'go',
    ['build', '-v', '-trimpath', ...tags, '-ldflags', b.ldflags, '-o', out + '/', ...b.packages],
    { cwd: b.module, env, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let done = 0;
  let lastReport = Date.now();
  const errors: string[] = [];
  createInterface({ input: child.stderr }).on('line', (line) => {
    // `go build -v` prints each package as it is compiled; anything with a space is an error or a note.
    if (/^\S+$/.test(line)) done++;
    else errors.push(line);
    const now = Date.now();
    if (now - lastReport > 15_000) {
      lastReport = now;
      const pct = total > 0 ? ` (~${Math.min(99, Math.round((done / total) * 100))}%)` : '';
      log(
        `localcluster:   ${Math.round((now - started) / 1000)}s: ${done}${total ? '/' + total : ''} packages${pct}`,
      );
    }
  });
  const code: number = await new Promise((resolve) => child.on('close', (c) => resolve(c ?? 1)));
  if (code !== 0) {
    throw new Error(`building ${b.what} failed (go build exit ${code}):\n${errors.slice(-40).join('\n')}`);
  }
  log(`localcluster:   done in ${Math.round((Date.now() - started) / 1000)}s`);
}

/**
 * Builds the control plane, the node components and containerd into the cache unless a build of the same
 * sources is there. The cold build compiles about 3,000 Go packages (4-10 minutes on 2 cores).
 */
export async function ensureBinaries(log: (line: string) => void = console.log): Promise<void> {
  if (cached()) return;
  await withBuildLock(cacheDir(), `Kubernetes ${KUBE_VERSION} and containerd`, log, async () => {
    if (!cached()) await buildBinaries(log);
  });
}

async function buildBinaries(log: (line: string) => void): Promise<void> {
  const started = Date.now();
  const out = cacheDir();
  const staging = join(out, 'bin.partial');
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  log(`localcluster: building the cluster's binaries from Go modules into ${out}`);
  log('localcluster: a cold build downloads ~1.2 GB of modules and takes 4-10 minutes on 2 cores;');
  log(
    'localcluster: it is cached afterwards and rebuilt only when tools/localcluster/*/go.mod or cmd/ change',
  );
  for (const [i, b] of builds.entries()) {
    log(`localcluster: step ${i + 1}/${builds.length}`);
    await goBuild(b, staging, log);
  }
  mkdirSync(join(out, 'bin'), { recursive: true });
  for (const f of readdirSync(staging)) renameSync(join(staging, f), join(out, 'bin', f));
  rmSync(staging, { recursive: true, force: true });
  writeFileSync(join(out, 'stamp'), sourceDigest() + '\n');
  log(`localcluster: binaries built in ${Math.round((Date.now() - started) / 1000)}s`);
}
