// The Dockerfile and the local cluster's image map must start the same program, or the tests would run
// something other than what users deploy.
import { existsSync, readFileSync } from 'node:fs';

const dockerfile = readFileSync('Dockerfile', 'utf8');
const images = JSON.parse(readFileSync('tools/localcluster/images.json', 'utf8')) as Record<
  string,
  { command: string[] }
>;

/** The ENTRYPOINT of a named stage, as an argv. */
function entrypoint(stage: string): string[] {
  const body = dockerfile
    .split(/^FROM /m)
    .find((s) => new RegExp(` AS ${stage}\\s*$`, 'm').test(s.split('\n')[0]!));
  const line = body?.split('\n').find((l) => l.startsWith('ENTRYPOINT '));
  if (!line) throw new Error(`no ENTRYPOINT in stage ${stage}`);
  return JSON.parse(line.slice('ENTRYPOINT '.length)) as string[];
}

describe('images', () => {
  it.each([
    ['operator', 'ghcr.io/hitachienergy/pull-state-operator', 'src/main.ts'],
    ['count-app', 'ghcr.io/hitachienergy/pull-state-count-app', 'examples/count-app/main.ts'],
  ])('stage %s runs what the local cluster runs for %s, built from %s', (stage, image, source) => {
    const [node, script] = entrypoint(stage);
    expect(node).toBe('/nodejs/bin/node');
    expect(images[image]?.command).toEqual(['node', script]);
    expect(script).toBe(`dist/${source.replace(/\.ts$/, '.js')}`);
    expect(existsSync(source)).toBe(true);
  });

  it('runs as the non-root user the manifests set', () => {
    expect(dockerfile).toMatch(/^USER 65532:65532$/m);
    for (const f of ['manifests/controller.yaml', 'manifests/helper.yaml'])
      expect(readFileSync(f, 'utf8')).toMatch(/runAsUser: 65532/);
  });
});
