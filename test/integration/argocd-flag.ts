// SKIP_ARGOCD=1 leaves Argo CD (a ~10 min Go build on first use) and the GitOps test out of a local run.
// CI never skips it.
export function skipArgoCd(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.SKIP_ARGOCD === '1' && env.CI !== 'true';
}
