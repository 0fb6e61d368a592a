// The Dockerfile and the local cluster's image map must start the same program, or the tests would run
// something other than what users deploy.
import { existsSync, readFileSync } from 'node:fs';
import { dockerfileInstruction, imageTargets } from '../../tools/localcluster/src/images.js';

const dockerfile = readFileSync('Dockerfile', 'utf8');
const images = imageTargets();
const entrypoint = (stage: string) => dockerfileInstruction(dockerfile, stage, 'ENTRYPOINT') ?? [];

describe('images', () => {
  it.each([
    ['operator', 'ghcr.io/hitachienergy/pull-state-operator', 'src/main.ts'],
    ['count-app', 'ghcr.io/hitachienergy/pull-state-count-app', 'examples/count-app/main.ts'],
  ])('stage %s runs what the local cluster runs for %s, built from %s', (stage, image, source) => {
    const [node, script] = entrypoint(stage);
    expect(node).toBe('/nodejs/bin/node');
    expect(images[image]?.target).toBe(stage);
    expect(script).toBe(`dist/${source.replace(/\.ts$/, '.js')}`);
    expect(existsSync(source)).toBe(true);
  });

  it('ships the CRD the validators are compiled from at start', () => {
    expect(dockerfile).toMatch(/^COPY crds \.\/crds$/m);
  });

  it('runs as the non-root user the manifests set', () => {
    expect(dockerfile).toMatch(/^USER 65532:65532$/m);
    for (const f of ['manifests/controller.yaml', 'manifests/helper.yaml'])
      expect(readFileSync(f, 'utf8')).toMatch(/runAsUser: 65532/);
  });
});
