// npm run release -- X.Y.Z: sets the version everywhere the install and the examples name it, moves the
// CHANGELOG's Unreleased section under it, and renders dist/install.yaml (one file to attach to the release).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  changelogSection,
  installHeader,
  releaseChangelog,
  retagImages,
  setKustomizeTag,
  setPackageVersion,
  setTargetRevision,
  tagOf,
  versionProblem,
} from './plan.js';

const USAGE = `usage: npm run release -- <version> [--dry-run]

Prepares release <version> (e.g. 0.2.0) in this checkout:
  - package.json, package-lock.json: the version
  - kustomization.yaml, examples/, Dockerfile: image tags ghcr.io/hitachienergy/pull-state-*:<version>
  - examples/argocd/application.yaml: targetRevision v<version>
  - CHANGELOG.md: the "## Unreleased" section becomes "## [<version>] - <today>"
  - dist/install.yaml: kubectl kustomize . (CRDs, RBAC, workloads), images pinned by tag
Then commit, tag v<version> and push the tag: the release workflow builds the images and attaches
dist/install.yaml to the GitHub release.

  --dry-run        list what would change; write nothing
  --install-only   only render dist/install.yaml, after checking that the checkout is release <version>
                   (the release workflow, on the tagged commit)
  --notes          print the CHANGELOG section of <version> (the release notes)
  --help           this text
`;

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Exit 2: the command line was wrong; exit 1: the checkout could not be released. */
function fail(message: string, code: 1 | 2 = 1): never {
  process.stderr.write(`release: ${message}\n`);
  process.exit(code);
}

/** The YAML files under examples/, where image references are retagged. */
function exampleFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
      const path = join(dir, e.name);
      if (e.isDirectory()) walk(path);
      else if (/\.ya?ml$/.test(e.name)) out.push(path);
    }
  };
  walk('examples');
  return out;
}

/** dist/install.yaml: the kustomization rendered, refused unless it names the release's image tag. */
function render(version: string): void {
  let rendered: string;
  try {
    rendered = execFileSync('kubectl', ['kustomize', '.'], { cwd: root, encoding: 'utf8' });
  } catch (err) {
    fail(`kubectl kustomize . failed (kubectl is needed to render install.yaml): ${(err as Error).message}`);
  }
  if (!new RegExp(`pull-state-operator:${version.replace(/\./g, '\\.')}\\s`).test(rendered))
    fail(`the rendered install does not name the image tag ${version}: check kustomization.yaml`);
  mkdirSync(join(root, 'dist'), { recursive: true });
  writeFileSync(join(root, 'dist', 'install.yaml'), installHeader(version) + rendered);
}

function main(args: string[]): void {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(USAGE);
    return;
  }
  const flags = new Set(['--dry-run', '--install-only', '--notes']);
  const dryRun = args.includes('--dry-run');
  const rest = args.filter((a) => !flags.has(a));
  const unknown = rest.find((a) => a.startsWith('-'));
  if (unknown) fail(`unknown flag ${unknown}\n${USAGE}`, 2);
  if (rest.length !== 1) fail(`one version is needed, got ${rest.length}\n${USAGE}`, 2);
  const version = rest[0]!;
  const problem = versionProblem(version);
  if (problem) fail(problem, 2);
  const today = new Date().toISOString().slice(0, 10);
  if (args.includes('--notes')) {
    try {
      process.stdout.write(changelogSection(readFileSync(join(root, 'CHANGELOG.md'), 'utf8'), version));
    } catch (err) {
      fail((err as Error).message);
    }
    return;
  }
  if (args.includes('--install-only')) {
    const { version: current } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      version: string;
    };
    if (current !== version)
      fail(
        `package.json says ${current}, not ${version}: run \`npm run release -- ${version}\` and commit first`,
      );
    render(version);
    process.stdout.write('dist/install.yaml written\n');
    return;
  }

  const edits: [string, (text: string) => string][] = [
    ['package.json', (t) => setPackageVersion(t, version)],
    [
      'package-lock.json',
      (t) => {
        const lock = JSON.parse(t) as { version: string; packages: Record<string, { version?: string }> };
        lock.version = version;
        if (lock.packages['']) lock.packages[''].version = version;
        return `${JSON.stringify(lock, null, 2)}\n`;
      },
    ],
    ['kustomization.yaml', (t) => setKustomizeTag(t, version)],
    ['Dockerfile', (t) => retagImages(t, version)],
    ['CHANGELOG.md', (t) => releaseChangelog(t, version, today)],
    ...exampleFiles().map((f): [string, (t: string) => string] => [
      f,
      f === join('examples', 'argocd', 'application.yaml')
        ? (t) => setTargetRevision(retagImages(t, version), tagOf(version))
        : (t) => retagImages(t, version),
    ]),
  ];
  const changed: [string, string][] = [];
  for (const [file, edit] of edits) {
    const before = readFileSync(join(root, file), 'utf8');
    let after: string;
    try {
      after = edit(before);
    } catch (err) {
      fail(`${file}: ${(err as Error).message}`);
    }
    if (after !== before) changed.push([file, after]);
  }
  if (dryRun) {
    process.stdout.write(
      `release ${version} would change:\n${changed.map(([f]) => `  ${f}`).join('\n')}\nand write dist/install.yaml\n`,
    );
    return;
  }
  for (const [file, text] of changed) writeFileSync(join(root, file), text);
  render(version);
  process.stdout.write(
    [
      `release ${version} prepared:`,
      ...changed.map(([f]) => `  ${f}`),
      '  dist/install.yaml',
      '',
      'Next:',
      `  git commit -am "Release ${version}" && git tag -a ${tagOf(version)} -m "Release ${version}"`,
      `  git push origin main ${tagOf(version)}   # the release workflow builds the images and attaches install.yaml`,
      '',
    ].join('\n'),
  );
}

main(process.argv.slice(2));
