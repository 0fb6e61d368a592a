// Argo CD for `up --argocd`: the application controller and the repo server built from the Go module proxy
// (tools/localcluster/argocd), the kustomize the repo server runs (tools/localcluster/kustomize), upstream's
// CRDs and the wrapper scripts the repo server executes. Cached apart from the cluster's binaries: it needs
// another Go release and other Kubernetes libraries, so nothing of that build is shared. `npm test` builds it
// in the background (`cluster build --argocd` at idle priority) while the other tests run.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { goBuild, type GoBuild } from './build.js';
import { withBuildLock } from './build-lock.js';
import { repoRoot } from './paths.js';

/** Must match tools/localcluster/argocd/go.mod. */
export const ARGOCD_VERSION = 'v3.6.1';
/** Argo CD v3.6's go.mod needs Go 1.27; the go command fetches this release from the module proxy. */
export const ARGOCD_TOOLCHAIN = 'go1.27.3';

const argocdModule = join(repoRoot, 'tools', 'localcluster', 'argocd');
const kustomizeModule = join(repoRoot, 'tools', 'localcluster', 'kustomize');

/** The names the one binary answers to (it dispatches on its name, like upstream's). */
export const ARGOCD_COMMANDS = ['argocd-application-controller', 'argocd-repo-server', 'argocd-git-ask-pass'];
const CRDS = ['application-crd.yaml', 'appproject-crd.yaml', 'applicationset-crd.yaml'];
// The repo server runs these for every manifest generation, even with GPG off.
const WRAPPERS = ['git-verify-wrapper.sh', 'gpg-wrapper.sh'];

export function argocdCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'pull-state-operator', `argocd-${ARGOCD_VERSION}`);
}

export const argocdBinDir = (): string => join(argocdCacheDir(), 'bin');
export const argocdCrdFiles = (): string[] => CRDS.map((f) => join(argocdCacheDir(), 'crds', f));

const ldflags = `-s -w -X github.com/argoproj/argo-cd/v3/common.version=${ARGOCD_VERSION.slice(1)}`;

const builds: GoBuild[] = [
  {
    what: `Argo CD ${ARGOCD_VERSION} (application controller, repo server)`,
    module: argocdModule,
    packages: ['.'],
    ldflags,
    toolchain: ARGOCD_TOOLCHAIN,
  },
  {
    what: 'kustomize (run by the repo server)',
    module: kustomizeModule,
    packages: ['sigs.k8s.io/kustomize/kustomize/v5'],
    ldflags: '-s -w',
    toolchain: ARGOCD_TOOLCHAIN,
  },
];

function sourceDigest(): string {
  const hash = createHash('sha256');
  for (const mod of [argocdModule, kustomizeModule]) {
    for (const f of readdirSync(mod)
      .filter((f) => /^go\.(mod|sum)$|\.go$/.test(f))
      .sort())
      hash.update(f).update(readFileSync(join(mod, f)));
  }
  hash.update(ldflags).update(ARGOCD_TOOLCHAIN);
  return hash.digest('hex').slice(0, 16);
}

function cached(): boolean {
  const stamp = join(argocdCacheDir(), 'stamp');
  return (
    existsSync(stamp) &&
    readFileSync(stamp, 'utf8').trim() === sourceDigest() &&
    ['argocd', 'kustomize', ...ARGOCD_COMMANDS, ...WRAPPERS].every((b) =>
      existsSync(join(argocdBinDir(), b)),
    ) &&
    argocdCrdFiles().every((f) => existsSync(f))
  );
}

/** Where the go command unpacked the Argo CD module: its CRDs and scripts are not in the binary. */
function argocdModuleDir(): string {
  return execFileSync('go', ['list', '-m', '-f', '{{.Dir}}', 'github.com/argoproj/argo-cd/v3'], {
    cwd: argocdModule,
    env: { ...process.env, GOTOOLCHAIN: ARGOCD_TOOLCHAIN, GOFLAGS: '-mod=mod' },
    encoding: 'utf8',
  }).trim();
}

/**
 * Builds Argo CD and kustomize into the cache unless a build of the same sources is there. Cold, this
 * downloads Go 1.27 and ~300 MiB of modules and compiles for about 10 minutes on 2 cores.
 */
export async function ensureArgoCd(log: (line: string) => void = console.log): Promise<void> {
  if (cached()) return;
  await withBuildLock(argocdCacheDir(), `Argo CD ${ARGOCD_VERSION}`, log, async () => {
    if (!cached()) await buildArgoCd(log);
  });
}

async function buildArgoCd(log: (line: string) => void): Promise<void> {
  const started = Date.now();
  const out = argocdCacheDir();
  const staging = join(out, 'staging');
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(join(staging, 'bin'), { recursive: true });
  mkdirSync(join(staging, 'crds'), { recursive: true });
  log(`localcluster: building Argo CD ${ARGOCD_VERSION} from Go modules into ${out}`);
  log(
    `localcluster: a cold build fetches ${ARGOCD_TOOLCHAIN} and ~300 MiB of modules and takes about 10 minutes on 2 cores; it is cached afterwards`,
  );
  for (const [i, b] of builds.entries()) {
    log(`localcluster: Argo CD step ${i + 1}/${builds.length}`);
    await goBuild(b, join(staging, 'bin'), log);
  }
  const source = argocdModuleDir();
  for (const w of WRAPPERS) {
    copyFileSync(join(source, 'hack', w), join(staging, 'bin', w));
    chmodSync(join(staging, 'bin', w), 0o755);
  }
  for (const name of ARGOCD_COMMANDS) symlinkSync('argocd', join(staging, 'bin', name));
  for (const f of CRDS) copyFileSync(join(source, 'manifests', 'crds', f), join(staging, 'crds', f));
  for (const d of ['bin', 'crds']) {
    rmSync(join(out, d), { recursive: true, force: true });
    renameSync(join(staging, d), join(out, d));
  }
  rmSync(staging, { recursive: true, force: true });
  writeFileSync(join(out, 'stamp'), sourceDigest() + '\n');
  log(`localcluster: Argo CD built in ${Math.round((Date.now() - started) / 1000)}s`);
}
