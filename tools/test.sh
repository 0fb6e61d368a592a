#!/usr/bin/env bash
# The project's whole test run: lint first (a minute; a formatting slip fails at once, not after the 40-minute
# integration run), then unit tests, then API-server tests (etcd and kube-apiserver alone), then
# integration tests against the local cluster (built on first use). Dependencies come from `npm cit`/`npm ci`;
# this script installs them itself if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/with-deps.sh
npm run lint
export NODE_OPTIONS="--experimental-vm-modules ${NODE_OPTIONS:-}"
# The local cluster's Go builds (cold: Kubernetes, containerd and kube-network-policies about 18 min of two
# cores, Argo CD about 10 more) run in one background process at idle CPU priority, so they take only the CPU
# the tests leave: they go on while the unit tests run, the cluster's start waits for what it needs (a lock,
# see tools/localcluster/src/build-lock.ts), and Argo CD, needed by the GitOps test alone, which runs last,
# builds while the other integration tests run. Cached, it ends at once. SKIP_ARGOCD=1 (never in CI) leaves
# Argo CD out, as the integration tests do.
if compgen -G "test/integration/*.test.ts" >/dev/null; then
  argocd=(--argocd)
  [[ "${SKIP_ARGOCD:-}" == 1 && "${CI:-}" != true ]] && argocd=()
  mkdir -p .local
  echo "test: building the local cluster in the background where it is not cached (log: .local/cluster-build.log)"
  setsid chrt --idle 0 nice -n 19 npx tsx tools/localcluster/src/cli.ts build "${argocd[@]}" \
    >.local/cluster-build.log 2>&1 &
  build_pid=$!
  # A run that ends early (a failure, Ctrl-C) does not leave the build running.
  trap 'kill -- -"$build_pid" 2>/dev/null || true' EXIT
fi
npx jest --selectProjects unit "$@"
# A short fuzz run (the long one: npm run fuzz -- --seconds 600).
npx tsx tools/fuzz/main.ts --seconds "${FUZZ_SECONDS:-20}"
# The controller in-process against etcd and kube-apiserver alone (about a minute); its setup waits for the
# background build of the binaries (the same lock). Before the integration tests, never beside them.
if compgen -G "test/apiserver/*.test.ts" >/dev/null; then
  npx jest --selectProjects apiserver --runInBand "$@"
fi
if compgen -G "test/integration/*.test.ts" >/dev/null; then
  npx jest --selectProjects integration --runInBand "$@"
fi
