import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import {
  changelogSection,
  installHeader,
  releaseChangelog,
  retagImages,
  setKustomizeTag,
  setPackageVersion,
  setTargetRevision,
  versionProblem,
} from '../../tools/release/plan.js';
import { COUNT_APP_IMAGE, GO_APP_IMAGE, OPERATOR_IMAGE, PYTHON_APP_IMAGE } from '../../harness/images.js';

describe('release plan', () => {
  it('takes semantic versions only, saying what is allowed', () => {
    for (const ok of ['0.1.0', '0.2.0-rc.1', '1.10.3']) expect(versionProblem(ok)).toBeUndefined();
    for (const bad of ['v0.1.0', '0.1', '01.0.0', '0.1.0+build', '', '0.1.0 ']) {
      expect(versionProblem(bad)).toContain(`"${bad}" is not a version; allowed: MAJOR.MINOR.PATCH`);
    }
  });

  it('turns the Unreleased section into the release, keeping older ones, and refuses an empty one', () => {
    const before = '# Changelog\n\n## Unreleased\n\n- new thing\n\n## [0.1.0] - 2026-12-01\n\n- first\n';
    const after = releaseChangelog(before, '0.2.0', '2026-12-07');
    expect(after).toBe(
      '# Changelog\n\n## Unreleased\n\n## [0.2.0] - 2026-12-07\n\n- new thing\n\n## [0.1.0] - 2026-12-01\n\n- first\n',
    );
    expect(() => releaseChangelog(after, '0.3.0', '2026-12-08')).toThrow('is empty');
    expect(() => releaseChangelog('# Changelog\n', '0.3.0', 'x')).toThrow('no "## Unreleased" section');
    expect(() => releaseChangelog(before, '0.1.0', 'x')).toThrow('already has a section for 0.1.0');
    expect(changelogSection(after, '0.2.0')).toBe('- new thing\n');
    expect(changelogSection(after, '0.1.0')).toBe('- first\n');
    expect(() => changelogSection(after, '0.9.0')).toThrow('no section for 0.9.0');
  });

  it('retags only this repository’s images, and sets the kustomize tag, the revision and the version', () => {
    const text =
      'image: ghcr.io/hitachienergy/pull-state-count-app:0.1.0\n- ghcr.io/hitachienergy/pull-state-operator:0.1.0\nimage: nginx:0.1.0\n';
    expect(retagImages(text, '0.2.0')).toBe(
      'image: ghcr.io/hitachienergy/pull-state-count-app:0.2.0\n- ghcr.io/hitachienergy/pull-state-operator:0.2.0\nimage: nginx:0.1.0\n',
    );
    expect(setKustomizeTag('images:\n  - name: x\n    newTag: 0.1.0\n', '0.2.0')).toBe(
      'images:\n  - name: x\n    newTag: 0.2.0\n',
    );
    expect(() => setKustomizeTag('images: []\n', '0.2.0')).toThrow('found 0');
    expect(setTargetRevision('  source:\n    targetRevision: main\n', 'v0.2.0')).toBe(
      '  source:\n    targetRevision: v0.2.0\n',
    );
    expect(setPackageVersion('{\n  "name": "x",\n  "version": "0.1.0"\n}\n', '0.2.0')).toContain(
      '"version": "0.2.0"',
    );
    expect(installHeader('0.2.0')).toContain('releases/download/v0.2.0/install.yaml');
  });

  it('finds the version in package.json, kustomization.yaml, the examples and the Argo CD revision alike', () => {
    const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    const kustomization = parse(readFileSync('kustomization.yaml', 'utf8')) as {
      images: { newTag: string }[];
    };
    expect(kustomization.images.map((i) => i.newTag)).toEqual([version]);
    expect(OPERATOR_IMAGE).toBe(`ghcr.io/hitachienergy/pull-state-operator:${version}`);
    const refs: string[] = [];
    for (const dir of readdirSync('examples')) {
      for (const f of readdirSync(join('examples', dir)).filter((x) => x.endsWith('.yaml'))) {
        const text = readFileSync(join('examples', dir, f), 'utf8');
        refs.push(...(text.match(/ghcr\.io\/hitachienergy\/pull-state-[a-z-]+:\S+/g) ?? []));
      }
    }
    expect(refs.length).toBeGreaterThan(0);
    for (const ref of refs)
      expect([OPERATOR_IMAGE, COUNT_APP_IMAGE, GO_APP_IMAGE, PYTHON_APP_IMAGE]).toContain(ref);
    const app = parse(readFileSync('examples/argocd/application.yaml', 'utf8')) as {
      spec: { source: { targetRevision: string } };
    };
    expect(['main', `v${version}`]).toContain(app.spec.source.targetRevision);
  });
});

describe('npm run release, in a scratch copy of the checkout', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'release-'));
    for (const f of [
      'package.json',
      'package-lock.json',
      'kustomization.yaml',
      'Dockerfile',
      'crds',
      'manifests',
      'examples',
      'tools/release',
    ])
      cpSync(f, join(dir, f), { recursive: true });
    writeFileSync(
      join(dir, 'CHANGELOG.md'),
      '# Changelog\n\n## Unreleased\n\n- a change\n\n## [0.1.0] - 2026-12-07\n\n- first\n',
    );
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const release = (...args: string[]) =>
    spawnSync('npx', ['tsx', join(dir, 'tools/release/main.ts'), ...args], { encoding: 'utf8' });

  it('refuses a bad version with exit code 2, naming what is allowed, and changes nothing', () => {
    const out = release('v0.2.0');
    expect(out.status).toBe(2);
    expect(out.stderr).toContain('"v0.2.0" is not a version; allowed: MAJOR.MINOR.PATCH');
    expect(readFileSync(join(dir, 'package.json'), 'utf8')).toBe(readFileSync('package.json', 'utf8'));
  });

  it('sets the version everywhere and renders one install.yaml with the images pinned by that tag', () => {
    const out = release('0.2.0-rc.1');
    expect(out.stderr).toBe('');
    expect(out.status).toBe(0);
    expect(out.stdout).toContain('git tag -a v0.2.0-rc.1');
    const install = readFileSync(join(dir, 'dist', 'install.yaml'), 'utf8');
    expect(install).toContain('releases/download/v0.2.0-rc.1/install.yaml');
    const kinds = parseAllDocumentsKinds(install);
    for (const kind of [
      'CustomResourceDefinition',
      'Namespace',
      'ClusterRole',
      'Deployment',
      'DaemonSet',
      'PodDisruptionBudget',
      'PriorityClass',
      'NetworkPolicy',
    ])
      expect(kinds).toContain(kind);
    const images = [...install.matchAll(/image: (\S+)/g)].map((m) => m[1]);
    expect(new Set(images)).toEqual(new Set(['ghcr.io/hitachienergy/pull-state-operator:0.2.0-rc.1']));
    expect(JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))).toMatchObject({
      version: '0.2.0-rc.1',
    });
    expect(JSON.parse(readFileSync(join(dir, 'package-lock.json'), 'utf8')).packages['']).toMatchObject({
      version: '0.2.0-rc.1',
    });
    expect(readFileSync(join(dir, 'examples/argocd/application.yaml'), 'utf8')).toMatch(
      /targetRevision: v0\.2\.0-rc\.1\n[\s\S]*pull-state-operator:0\.2\.0-rc\.1/,
    );
    expect(readFileSync(join(dir, 'examples/count-app/policy.yaml'), 'utf8')).toContain(
      'pull-state-count-app:0.2.0-rc.1',
    );
    expect(readFileSync(join(dir, 'CHANGELOG.md'), 'utf8')).toMatch(
      /## Unreleased\n\n## \[0\.2\.0-rc\.1\] - \d{4}-\d{2}-\d{2}\n\n- a change/,
    );
    expect(release('0.2.0-rc.1', '--notes').stdout).toBe('- a change\n');
    // The tagged tree renders the same install again; another version is refused.
    rmSync(join(dir, 'dist'), { recursive: true });
    expect(release('0.2.0-rc.1', '--install-only').status).toBe(0);
    expect(readFileSync(join(dir, 'dist', 'install.yaml'), 'utf8')).toBe(install);
    const wrong = release('0.3.0', '--install-only');
    expect(wrong.status).toBe(1);
    expect(wrong.stderr).toContain('package.json says 0.2.0-rc.1, not 0.3.0');
  });
});

function parseAllDocumentsKinds(text: string): string[] {
  return [...text.matchAll(/^kind: (\w+)$/gm)].map((m) => m[1]!);
}
