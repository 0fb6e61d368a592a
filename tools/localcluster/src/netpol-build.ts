// kube-network-policies for the nodes: built from tools/localcluster/netpol and cached apart from the
// cluster's other binaries (its own key), so adding or changing it never rebuilds Kubernetes or containerd.
// Its go.mod pins the modules it shares with the control plane to the control plane's versions, so this
// build, which runs after the control plane's, finds most of its packages compiled in Go's build cache.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { goBuild, type GoBuild } from './build.js';
import { withBuildLock } from './build-lock.js';
import { repoRoot } from './paths.js';

/** Must match tools/localcluster/netpol/go.mod. */
export const NETPOL_VERSION = 'v0.8.0';
const UPSTREAM = 'sigs.k8s.io/kube-network-policies';
const CONTROLLER = join('pkg', 'networkpolicy', 'controller.go');

export const netpolModule = join(repoRoot, 'tools', 'localcluster', 'netpol');
const compatFile = join(netpolModule, 'nftcompat', 'nfqueue.go');

export function netpolCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'pull-state-operator', `kube-network-policies-${NETPOL_VERSION}`);
}

export const netpolBinary = (): string => join(netpolCacheDir(), 'bin', 'kube-network-policies');

// Upstream builds its rules' `queue` verdict as an nftables queue expression, which needs CONFIG_NFT_QUEUE;
// nftcompat/nfqueue.go gives the same verdict through the xtables NFQUEUE target (see its header).
const QUEUE_EXPRESSION =
  /queue := &expr\.Queue\{Num: uint16\(c\.config\.QueueID\)\}\n\tif c\.config\.FailOpen \{\n\t\tqueue\.Flag = expr\.QueueFlagBypass\n\t\}/g;
const QUEUE_TARGET = 'queue := nfqueueTarget(uint16(c.config.QueueID), c.config.FailOpen)';
/** Upstream v0.8.0 builds it twice: the POSTROUTING rules and the DNS race workaround's PREROUTING rules. */
const QUEUE_EXPRESSIONS = 2;

/** Upstream's controller.go with every nftables queue expression replaced; throws if upstream changed. */
export function patchController(source: string): string {
  const found = source.match(QUEUE_EXPRESSION)?.length ?? 0;
  if (found !== QUEUE_EXPRESSIONS)
    throw new Error(
      `${UPSTREAM} ${CONTROLLER}: expected ${QUEUE_EXPRESSIONS} nftables queue expressions to replace, found ${found}; update src/netpol-build.ts for this release`,
    );
  return source.replace(QUEUE_EXPRESSION, QUEUE_TARGET);
}

/**
 * The wrapper's go.mod plus a replace of upstream by its patched copy, as an alternative go.mod for
 * `go build -modfile`: the committed go.mod stays upstream's release, checked against go.sum as usual.
 */
export function buildModFile(goMod: string, patchedUpstreamDir: string): string {
  return `${goMod.trimEnd()}\n\nreplace ${UPSTREAM} => ${patchedUpstreamDir}\n`;
}

const ldflags = '-s -w';

function sourceDigest(): string {
  const hash = createHash('sha256');
  for (const f of ['go.mod', 'go.sum']) hash.update(f).update(readFileSync(join(netpolModule, f)));
  for (const dir of ['cmd/kube-network-policies', 'nftcompat'])
    for (const f of readdirSync(join(netpolModule, dir)).sort())
      hash.update(f).update(readFileSync(join(netpolModule, dir, f)));
  hash.update(ldflags).update(QUEUE_EXPRESSION.source).update(QUEUE_TARGET);
  return hash.digest('hex').slice(0, 16);
}

function cached(): boolean {
  const stamp = join(netpolCacheDir(), 'stamp');
  return (
    existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === sourceDigest() && existsSync(netpolBinary())
  );
}

/**
 * Builds kube-network-policies into its cache unless a build of the same sources is there. Of its ~900
 * packages, all but ~150 are the control plane's, compiled just before (see its go.mod).
 */
export async function ensureNetpol(log: (line: string) => void = console.log): Promise<void> {
  if (cached()) return;
  await withBuildLock(netpolCacheDir(), `kube-network-policies ${NETPOL_VERSION}`, log, async () => {
    if (!cached()) await buildNetpol(log);
  });
}

async function buildNetpol(log: (line: string) => void): Promise<void> {
  const started = Date.now();
  const out = netpolCacheDir();
  const staging = join(out, 'staging');
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(join(staging, 'bin'), { recursive: true });
  log(`localcluster: building kube-network-policies ${NETPOL_VERSION} from Go modules into ${out}`);
  const env = { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-mod=mod' };
  execFileSync('go', ['mod', 'download', UPSTREAM], { cwd: netpolModule, env, stdio: 'inherit' });
  const upstreamDir = execFileSync('go', ['list', '-m', '-f', '{{.Dir}}', UPSTREAM], {
    cwd: netpolModule,
    env,
    encoding: 'utf8',
  }).trim();
  // Go refuses overlays of files in its module cache, so the patched release is a copy beside the build.
  const patched = join(staging, 'upstream');
  cpSync(upstreamDir, patched, { recursive: true });
  const pkg = join(patched, 'pkg', 'networkpolicy');
  chmodSync(pkg, 0o755);
  const controller = join(patched, CONTROLLER);
  const source = readFileSync(controller, 'utf8');
  rmSync(controller);
  writeFileSync(controller, patchController(source));
  copyFileSync(compatFile, join(pkg, 'nfqueue_compat.go'));
  const modFile = join(staging, 'build.mod');
  writeFileSync(modFile, buildModFile(readFileSync(join(netpolModule, 'go.mod'), 'utf8'), patched));
  copyFileSync(join(netpolModule, 'go.sum'), join(staging, 'build.sum'));
  const build: GoBuild = {
    what: `kube-network-policies ${NETPOL_VERSION}`,
    module: netpolModule,
    packages: ['./cmd/kube-network-policies'],
    ldflags,
    flags: [`-modfile=${modFile}`],
  };
  await goBuild(build, join(staging, 'bin'), log);
  rmSync(join(out, 'bin'), { recursive: true, force: true });
  renameSync(join(staging, 'bin'), join(out, 'bin'));
  rmSync(staging, { recursive: true, force: true });
  writeFileSync(join(out, 'stamp'), sourceDigest() + '\n');
  log(`localcluster: kube-network-policies built in ${Math.round((Date.now() - started) / 1000)}s`);
}
