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
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
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

/** Image name → the Dockerfile target it is built from (tools/localcluster/images.json). */
export function imageTargets(root = repoRoot): Record<string, { target: string }> {
  return JSON.parse(readFileSync(join(root, 'tools', 'localcluster', 'images.json'), 'utf8')) as Record<
    string,
    { target: string }
  >;
}

/** The configs of this repository's images, as the Dockerfile defines them. */
export function appImageConfigs(root = repoRoot): ImageConfig[] {
  const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
  const targets = imageTargets(root);
  return referencedImages(root)
    .filter((ref) => imageName(ref) in targets)
    .map((ref) => {
      const { target } = targets[imageName(ref)]!;
      return {
        ref,
        entrypoint: dockerfileInstruction(dockerfile, target, 'ENTRYPOINT'),
        cmd: dockerfileInstruction(dockerfile, target, 'CMD'),
        workingDir: '/app',
        user: '65532:65532',
        env: ['PATH=/nodejs/bin:/usr/bin:/bin', 'NODE_ENV=production'],
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
  execFileSync(
    'npm',
    ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'],
    {
      cwd: staging,
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
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
  for (const config of appImageConfigs()) images.push({ config, layer: appLayer });

  const archive = join(imagesDir, 'images.tar');
  writeArchive(archive, work, images);
  rmSync(work, { recursive: true, force: true });
  const refs = images.map((i) => i.config.ref);
  log(
    `localcluster: assembled ${refs.length} images in ${((Date.now() - started) / 1000).toFixed(1)}s: ${refs.join(', ')}`,
  );
  return { archive, refs };
}
