#!/usr/bin/env bash
# The project's whole test run: unit tests, then integration tests against the local cluster (built on
# first use). Dependencies come from `npm cit`/`npm ci`; this script installs them itself if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/with-deps.sh
export NODE_OPTIONS="--experimental-vm-modules ${NODE_OPTIONS:-}"
npx jest --selectProjects unit "$@"
# A short fuzz run (the long one: npm run fuzz -- --seconds 600).
npx tsx tools/fuzz/main.ts --seconds "${FUZZ_SECONDS:-20}"
if compgen -G "test/integration/*.test.ts" >/dev/null; then
  npx jest --selectProjects integration --runInBand "$@"
fi
