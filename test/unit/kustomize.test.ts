import { execFileSync } from 'node:child_process';
import { parseAllDocuments } from 'yaml';

interface Doc {
  kind: string;
  metadata: { name: string };
  spec?: { template?: { spec?: { containers?: { image: string }[] } } };
}

describe('root kustomization', () => {
  const docs = parseAllDocuments(execFileSync('kubectl', ['kustomize', '.'], { encoding: 'utf8' })).map(
    (d) => d.toJS() as Doc,
  );

  it('renders the CRD and the operator namespace', () => {
    expect(docs.map((d) => `${d.kind}/${d.metadata.name}`)).toEqual(
      expect.arrayContaining([
        'CustomResourceDefinition/pullstatepolicies.pullstate.hitachienergy.com',
        'Namespace/pull-state-operator-system',
      ]),
    );
  });

  it('sets every operator image through kustomize images:', () => {
    const images = docs.flatMap((d) => d.spec?.template?.spec?.containers?.map((c) => c.image) ?? []);
    expect(images.length).toBeGreaterThanOrEqual(2);
    for (const image of images) expect(image).toMatch(/^ghcr\.io\/hitachienergy\/pull-state-operator:/);
  });
});
