// The Dockerfile and the local cluster's image map must start the same program, or the tests would run
// something other than what users deploy.
import { existsSync, readFileSync } from 'node:fs';
import {
  GO_BUILD_FLAGS,
  PRODUCTION_INSTALL_FLAGS,
  dockerfileInstruction,
  imageTargets,
} from '../../tools/localcluster/src/images.js';

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

  it('pins every base image by digest (stages built here are named, not pinned)', () => {
    const froms = [...dockerfile.matchAll(/^FROM (?:--platform=\S+ )?(\S+)(?: AS (\S+))?$/gm)];
    const stages = new Set(froms.map((m) => m[2]));
    const external = froms.map((m) => m[1]!).filter((image) => !stages.has(image));
    expect(external.length).toBeGreaterThanOrEqual(5);
    for (const image of external) expect(image).toMatch(/^[a-z0-9./-]+:[\w.-]+@sha256:[0-9a-f]{64}$/);
  });

  // The local cluster cannot pull the base images; it runs the Dockerfile's own build steps instead.
  it('installs production dependencies and builds the Go app with the flags the Dockerfile uses', () => {
    const run = (stage: string) => {
      const body = dockerfile.split(/^FROM /m).find((b) => b.split('\n')[0]!.endsWith(` AS ${stage}`))!;
      return body.split('\n').filter((l) => l.startsWith('RUN '));
    };
    const [deps] = run('deps');
    expect(deps!.split(' ').slice(1, 3)).toEqual(['npm', 'ci']);
    expect(new Set(deps!.split(' ').slice(3))).toEqual(new Set(PRODUCTION_INSTALL_FLAGS));
    const [go] = run('go-app-build');
    expect(go).toContain('CGO_ENABLED=0');
    for (const flag of GO_BUILD_FLAGS) expect(go!.split(' ')).toContain(flag);
  });
});
