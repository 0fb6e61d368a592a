// What `npm run release -- X.Y.Z` changes in the repository, as pure text edits (comments and layout kept),
// apart from the I/O in main.ts so each rule is easy to test.

/** The images this repository builds (operator and example apps), tagged with the release's version. */
const IMAGE_REFERENCE = /(ghcr\.io\/hitachienergy\/pull-state-[a-z0-9-]+):[0-9A-Za-z.-]+/g;

/** Semantic versions without build metadata: 0.2.0, 1.0.0-rc.1. */
const VERSION = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$/;

export function versionProblem(version: string): string | undefined {
  if (VERSION.test(version)) return undefined;
  return `"${version}" is not a version; allowed: MAJOR.MINOR.PATCH with an optional pre-release, e.g. 0.2.0 or 0.2.0-rc.1 (no leading "v")`;
}

/** The git tag of a version. */
export const tagOf = (version: string) => `v${version}`;

/**
 * CHANGELOG.md with its "## Unreleased" section renamed to the release (a new empty Unreleased section above
 * it). Throws if there is no Unreleased section or it is empty: a release says what changed.
 */
export function releaseChangelog(text: string, version: string, date: string): string {
  const heading = /^## Unreleased[ \t]*$/m;
  const match = heading.exec(text);
  if (!match) throw new Error('CHANGELOG.md has no "## Unreleased" section to release');
  const rest = text.slice(match.index + match[0].length);
  const next = rest.search(/^## /m);
  const body = (next < 0 ? rest : rest.slice(0, next)).trim();
  if (!body)
    throw new Error('the "## Unreleased" section of CHANGELOG.md is empty: say what this release changes');
  if (new RegExp(`^## \\[${version.replace(/\./g, '\\.')}\\]`, 'm').test(text))
    throw new Error(`CHANGELOG.md already has a section for ${version}`);
  return `${text.slice(0, match.index)}## Unreleased\n\n## [${version}] - ${date}${rest}`;
}

/** The body of a released version's CHANGELOG section (the release notes). */
export function changelogSection(text: string, version: string): string {
  const heading = new RegExp(`^## \\[${version.replace(/\./g, '\\.')}\\].*$`, 'm');
  const match = heading.exec(text);
  if (!match) throw new Error(`CHANGELOG.md has no section for ${version}`);
  const rest = text.slice(match.index + match[0].length);
  const next = rest.search(/^## /m);
  return `${(next < 0 ? rest : rest.slice(0, next)).trim()}\n`;
}

/** Every reference to one of this repository's images, tagged with `version` instead. */
export function retagImages(text: string, version: string): string {
  return text.replace(IMAGE_REFERENCE, `$1:${version}`);
}

/** kustomization.yaml with the operator image's `newTag` set to `version`. */
export function setKustomizeTag(text: string, version: string): string {
  const lines = /^([ \t]*newTag:[ \t]*)\S+[ \t]*$/gm;
  const count = text.match(lines)?.length ?? 0;
  if (count !== 1) throw new Error(`kustomization.yaml: expected one images[].newTag, found ${count}`);
  return text.replace(lines, `$1${version}`);
}

/** An Argo CD Application following the release's tag instead of a branch or an older tag. */
export function setTargetRevision(text: string, tag: string): string {
  const line = /^([ \t]*targetRevision:[ \t]*)\S+[ \t]*$/m;
  if (!line.test(text)) throw new Error('the Application has no spec.source.targetRevision');
  return text.replace(line, `$1${tag}`);
}

/** package.json with its version set (the local cluster and the tests name images by it). */
export function setPackageVersion(text: string, version: string): string {
  const field = /^(\s*"version":\s*)"[^"]*"/m;
  if (!field.test(text)) throw new Error('package.json has no "version"');
  return text.replace(field, `$1"${version}"`);
}

/** The first lines of dist/install.yaml: what it is and how to apply it. */
export function installHeader(version: string): string {
  return [
    `# pull-state-operator ${version}: CRDs, namespace, RBAC, controller, helpers, NetworkPolicies.`,
    `#   kubectl apply --server-side -f https://github.com/hitachienergy/pull-state-operator/releases/download/${tagOf(version)}/install.yaml`,
    '# Rendered by `npm run release` from kustomization.yaml; do not edit.',
    '',
  ].join('\n');
}
