// Images without a registry: each is a single-layer docker-archive assembled from a directory and imported
// into every node's containerd. The operator and count-app images hold this repository's compiled code, its
// production dependencies and the machine's own Node.js runtime, laid out as the Dockerfile lays them out.
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
  realpathSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { parse } from 'yaml';
import { binaryPath } from './build.js';
import { imagesDir, repoRoot } from './paths.js';

export const PAUSE_IMAGE = 'localcluster/pause:1';
/**
 * Runs a container's `command`/`args` verbatim with the host's /usr and /etc read-only (the runc shim adds
 * them). Tagged, not `latest`, because the kubelet always pulls `latest`, and nothing can be pulled here.
 */
export const EXEC_IMAGE = 'localcluster/exec:1';

export interface ImageConfig {
  ref: string;
  entrypoint?: string[];
  cmd?: string[];
  workingDir?: string;
  user?: string;
  env?: string[];
}

/** `registry/name:tag` or `name@sha256:...` without tag or digest. */
export function imageName(image: string): string {
  const at = image.indexOf('@');
  const withoutDigest = at >= 0 ? image.slice(0, at) : image;
  const colon = withoutDigest.lastIndexOf(':');
  return colon > withoutDigest.lastIndexOf('/') ? withoutDigest.slice(0, colon) : withoutDigest;
}

/** The JSON-form instruction `keyword` (ENTRYPOINT, CMD) of a Dockerfile stage, as an argv. */
export function dockerfileInstruction(
  dockerfile: string,
  stage: string,
  keyword: string,
): string[] | undefined {
  const body = dockerfile
    .split(/^FROM /m)
    .find((s) => new RegExp(` AS ${stage}\\s*$`, 'm').test(s.split('\n')[0]!));
  if (!body) throw new Error(`Dockerfile has no stage ${stage}`);
  const line = body.split('\n').find((l) => l.startsWith(`${keyword} `));
  return line ? (JSON.parse(line.slice(keyword.length + 1)) as string[]) : undefined;
}

/** Every image reference the install (kustomization.yaml) and the examples name. */
export function referencedImages(root = repoRoot): string[] {
  const refs = new Set<string>();
  const kustomization = parse(readFileSync(join(root, 'kustomization.yaml'), 'utf8')) as {
    images?: { newName?: string; name: string; newTag?: string }[];
  };
  for (const i of kustomization.images ?? []) refs.add(`${i.newName ?? i.name}:${i.newTag ?? 'latest'}`);
  const examples = join(root, 'examples');
  for (const dir of readdirSync(examples, { withFileTypes: true }).filter((e) => e.isDirectory())) {
    const d = join(examples, dir.name);
    for (const f of readdirSync(d).filter((x) => x.endsWith('.yaml'))) {
      for (const m of readFileSync(join(d, f), 'utf8').matchAll(/^\s*image:\s*["']?([^\s"']+)/gm))
        refs.add(m[1]!);
    }
  }
  return [...refs].sort();
}

/**
 * How an image is assembled here, for the Dockerfile target of the same name: `node` (the default) from this
 * repository's compiled code and the machine's Node.js; `go` from a Go program built with the machine's Go;
 * `python` from a script and the machine's Python (Debian's /usr/bin/python3 and its standard library).
 */
export interface ImageTarget {
  target: string;
  runtime?: 'node' | 'go' | 'python';
  /** For `go` and `python`: the directory with the program (a Go module, or `main.py`). */
  source?: string;
}

/** Image name → the Dockerfile target it is built from (tools/localcluster/images.json). */
export function imageTargets(root = repoRoot): Record<string, ImageTarget> {
  return JSON.parse(readFileSync(join(root, 'tools', 'localcluster', 'images.json'), 'utf8')) as Record<
    string,
    ImageTarget
  >;
}

/** The configs of this repository's images, as the Dockerfile defines them. */
export function appImageConfigs(root = repoRoot): ImageConfig[] {
  const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
  const targets = imageTargets(root);
  return referencedImages(root)
    .filter((ref) => imageName(ref) in targets)
    .map((ref) => {
      const { target, runtime = 'node' } = targets[imageName(ref)]!;
      return {
        ref,
        entrypoint: dockerfileInstruction(dockerfile, target, 'ENTRYPOINT'),
        cmd: dockerfileInstruction(dockerfile, target, 'CMD'),
        workingDir: '/app',
        user: '65532:65532',
        env:
          runtime === 'node'
            ? ['PATH=/nodejs/bin:/usr/bin:/bin', 'NODE_ENV=production']
            : ['PATH=/usr/local/bin:/usr/bin:/bin'],
      };
    });
}

/** The shared libraries a binary loads, from `ldd`. */
function sharedLibraries(binary: string): string[] {
  const out = execFileSync('ldd', [binary], { encoding: 'utf8' });
  const libs: string[] = [];
  for (const line of out.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m) libs.push(m[1]!);
  }
  return libs;
}

function copyInto(rootfs: string, hostPath: string, imagePath = hostPath): void {
  const dest = join(rootfs, imagePath);
  mkdirSync(dirname(dest), { recursive: true });
  copyFileSync(hostPath, dest);
  chmodSync(dest, 0o755);
}

function baseDirs(rootfs: string): void {
  for (const d of ['etc', 'tmp', 'proc', 'sys', 'dev', 'run', 'var', 'root'])
    mkdirSync(join(rootfs, d), { recursive: true });
  chmodSync(join(rootfs, 'tmp'), 0o1777);
  writeFileSync(
    join(rootfs, 'etc', 'passwd'),
    'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n',
  );
  writeFileSync(join(rootfs, 'etc', 'group'), 'root:x:0:\nnonroot:x:65532:\n');
}

/** A Go program as the Dockerfile's Go stages build it: static, at /app/<directory name>. */
/** The Dockerfile's Go build (stage go-app-build), with CGO_ENABLED=0: a unit test holds the two together. */
export const GO_BUILD_FLAGS = ['-trimpath', '-ldflags=-s'];
/** The Dockerfile's production install (stage deps): the same flags, so the same node_modules. */
export const PRODUCTION_INSTALL_FLAGS = ['--omit=dev', '--no-audit', '--no-fund', '--ignore-scripts'];

function goProgram(rootfs: string, source: string): void {
  const out = join(rootfs, 'app', basename(source));
  mkdirSync(dirname(out), { recursive: true });
  execFileSync('go', ['build', ...GO_BUILD_FLAGS, '-o', out, '.'], {
    cwd: source,
    env: { ...process.env, CGO_ENABLED: '0', GOTOOLCHAIN: 'local', GOFLAGS: '-mod=mod' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

/** Debian's Python, not one on PATH (pyenv and the like live in home directories). */
const PYTHON = '/usr/bin/python3';
/** Parts of the standard library a small service never imports. */
const PYTHON_SKIP = new Set([
  '__pycache__',
  'test',
  'site-packages',
  'dist-packages',
  'idlelib',
  'tkinter',
  'turtledemo',
  'ensurepip',
  'lib2to3',
  'pydoc_data',
]);

/**
 * A Python script with the machine's interpreter, its standard library and the libraries its extension
 * modules load, at the paths Debian uses (the Dockerfile's stage uses the official python image).
 */
function pythonProgram(rootfs: string, source: string): void {
  const python = realpathSync(PYTHON);
  const stdlib = execFileSync(python, ['-c', "import sysconfig; print(sysconfig.get_paths()['stdlib'])"], {
    encoding: 'utf8',
  }).trim();
  copyInto(rootfs, python);
  symlinkSync(basename(python), join(rootfs, 'usr', 'bin', 'python3'));
  cpSync(stdlib, join(rootfs, stdlib), {
    recursive: true,
    dereference: true,
    filter: (src) => !PYTHON_SKIP.has(basename(src)) && !/^config-/.test(basename(src)),
  });
  const extensions = readdirSync(join(stdlib, 'lib-dynload')).map((f) => join(stdlib, 'lib-dynload', f));
  for (const lib of new Set([python, ...extensions].flatMap(sharedLibraries)))
    if (!existsSync(join(rootfs, lib))) copyInto(rootfs, lib);
  mkdirSync(join(rootfs, 'app'), { recursive: true });
  copyFileSync(join(source, 'main.py'), join(rootfs, 'app', 'main.py'));
}

/** Production dependencies, installed once per package-lock.json. */
function productionModules(log: (line: string) => void): string {
  const lock = readFileSync(join(repoRoot, 'package-lock.json'));
  const digest = createHash('sha256')
    .update(lock)
    .update(readFileSync(join(repoRoot, 'package.json')))
    .digest('hex')
    .slice(0, 12);
  const dir = join(imagesDir, `prod-deps-${digest}`);
  if (existsSync(join(dir, 'node_modules'))) return dir;
  log('localcluster: installing production dependencies for the images (npm ci --omit=dev)');
  for (const d of readdirSync(imagesDir).filter((d) => d.startsWith('prod-deps-')))
    rmSync(join(imagesDir, d), { recursive: true, force: true });
  const staging = `${dir}.partial`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  copyFileSync(join(repoRoot, 'package.json'), join(staging, 'package.json'));
  copyFileSync(join(repoRoot, 'package-lock.json'), join(staging, 'package-lock.json'));
  execFileSync('npm', ['ci', ...PRODUCTION_INSTALL_FLAGS, '--loglevel=error'], {
    cwd: staging,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  renameSync(staging, dir);
  return dir;
}

interface Layer {
  diffId: string;
  file: string;
}

function tarLayer(rootfs: string, work: string): Layer {
  const tmp = join(work, 'layer.tar');
  // Fixed owner and times: the same inputs give the same layer digest, so nodes can share it.
  execFileSync('tar', [
    '--sort=name',
    '--owner=0',
    '--group=0',
    '--numeric-owner',
    '--mtime=@0',
    '-C',
    rootfs,
    '-cf',
    tmp,
    '.',
  ]);
  const diffId = createHash('sha256').update(readFileSync(tmp)).digest('hex');
  mkdirSync(join(work, diffId), { recursive: true });
  renameSync(tmp, join(work, diffId, 'layer.tar'));
  return { diffId, file: `${diffId}/layer.tar` };
}

function writeArchive(out: string, work: string, images: { config: ImageConfig; layer: Layer }[]): void {
  const manifest = images.map(({ config, layer }) => {
    const json = JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created: '1970-01-01T00:00:00Z',
      config: {
        Entrypoint: config.entrypoint ?? null,
        Cmd: config.cmd ?? null,
        Env: config.env ?? ['PATH=/usr/local/bin:/usr/bin:/bin'],
        WorkingDir: config.workingDir ?? '/',
        User: config.user ?? '',
      },
      rootfs: { type: 'layers', diff_ids: [`sha256:${layer.diffId}`] },
    });
    const name = `${createHash('sha256').update(json).digest('hex')}.json`;
    writeFileSync(join(work, name), json);
    return { Config: name, RepoTags: [config.ref], Layers: [layer.file] };
  });
  writeFileSync(join(work, 'manifest.json'), JSON.stringify(manifest));
  const entries = readdirSync(work).filter((e) => e !== 'rootfs');
  execFileSync('tar', [
    '--owner=0',
    '--group=0',
    '--numeric-owner',
    '--mtime=@0',
    '-C',
    work,
    '-cf',
    out,
    ...entries,
  ]);
}

/**
 * Assembles one docker-archive with every image the nodes need: the pause image, `localcluster/exec`, and
 * this repository's images (one shared layer, an entry point each). Needs `npm run build` first.
 */
export function assembleImages(log: (line: string) => void = console.log): {
  archive: string;
  refs: string[];
} {
  const started = Date.now();
  mkdirSync(imagesDir, { recursive: true });
  const work = join(imagesDir, 'work');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const images: { config: ImageConfig; layer: Layer }[] = [];

  const pause = join(work, 'rootfs');
  baseDirs(pause);
  copyInto(pause, binaryPath('pause'), '/pause');
  images.push({ config: { ref: PAUSE_IMAGE, entrypoint: ['/pause'] }, layer: tarLayer(pause, work) });
  rmSync(pause, { recursive: true, force: true });

  const exec = join(work, 'rootfs');
  baseDirs(exec);
  mkdirSync(join(exec, 'usr'));
  for (const link of ['bin', 'sbin', 'lib', 'lib64']) symlinkSync(`usr/${link}`, join(exec, link));
  images.push({ config: { ref: EXEC_IMAGE }, layer: tarLayer(exec, work) });
  rmSync(exec, { recursive: true, force: true });

  const dist = join(repoRoot, 'dist');
  if (!existsSync(join(dist, 'src', 'main.js')))
    throw new Error('dist/ is missing: run `npm run build` first');
  const app = join(work, 'rootfs');
  baseDirs(app);
  copyInto(app, process.execPath, '/nodejs/bin/node');
  for (const lib of sharedLibraries(process.execPath)) copyInto(app, lib);
  mkdirSync(join(app, 'home', 'nonroot'), { recursive: true });
  cpSync(join(productionModules(log), 'node_modules'), join(app, 'app', 'node_modules'), { recursive: true });
  copyFileSync(join(repoRoot, 'package.json'), join(app, 'app', 'package.json'));
  cpSync(dist, join(app, 'app', 'dist'), { recursive: true });
  // As the Dockerfile does: the validators are compiled from the CRD's schema at start.
  cpSync(join(repoRoot, 'crds'), join(app, 'app', 'crds'), { recursive: true });
  const appLayer = tarLayer(app, work);
  rmSync(app, { recursive: true, force: true });
  const targets = imageTargets();
  for (const config of appImageConfigs()) {
    const t = targets[imageName(config.ref)]!;
    if ((t.runtime ?? 'node') === 'node') {
      images.push({ config, layer: appLayer });
      continue;
    }
    if (!t.source) throw new Error(`tools/localcluster/images.json: ${imageName(config.ref)} needs a source`);
    const rootfs = join(work, 'rootfs');
    baseDirs(rootfs);
    mkdirSync(join(rootfs, 'home', 'nonroot'), { recursive: true });
    if (t.runtime === 'go') goProgram(rootfs, join(repoRoot, t.source));
    else pythonProgram(rootfs, join(repoRoot, t.source));
    images.push({ config, layer: tarLayer(rootfs, work) });
    rmSync(rootfs, { recursive: true, force: true });
  }

  const archive = join(imagesDir, 'images.tar');
  writeArchive(archive, work, images);
  rmSync(work, { recursive: true, force: true });
  const refs = images.map((i) => i.config.ref);
  log(
    `localcluster: assembled ${refs.length} images in ${((Date.now() - started) / 1000).toFixed(1)}s: ${refs.join(', ')}`,
  );
  return { archive, refs };
}
