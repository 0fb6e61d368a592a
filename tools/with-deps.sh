#!/usr/bin/env bash
# Installs the npm dependencies if they are missing (a fresh clone), then runs the given command, if any.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x node_modules/.bin/tsx ] || [ ! -x node_modules/.bin/jest ]; then
  echo "installing npm dependencies (npm ci)"
  npm ci --no-fund --no-audit
fi
if [ "$#" -gt 0 ]; then exec "$@"; fi
