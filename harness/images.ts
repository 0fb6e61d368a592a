// The images this repository builds, tagged with its version (package.json), as the local cluster assembles
// them from kustomization.yaml and the examples: one place, so a release changes no test.
import { readFileSync } from 'node:fs';

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

export const OPERATOR_IMAGE = `ghcr.io/hitachienergy/pull-state-operator:${version}`;
export const COUNT_APP_IMAGE = `ghcr.io/hitachienergy/pull-state-count-app:${version}`;
export const GO_APP_IMAGE = `ghcr.io/hitachienergy/pull-state-go-app:${version}`;
export const PYTHON_APP_IMAGE = `ghcr.io/hitachienergy/pull-state-python-app:${version}`;
