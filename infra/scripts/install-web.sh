#!/usr/bin/env bash
# Builds the NOC screen and GraphiQL (services/web) into services/web/dist, the folder the argus
# binary embeds: npm packages at the versions package-lock.json pins, installed only when the lock
# changed, and the build only when a source did. Node and npm come from install-lab-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/../../services/web"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
if [ ! -f dist/index.html ] || [ -n "$(find src build.mjs package-lock.json -newer dist/index.html -print -quit)" ]; then
  node build.mjs
  touch dist/index.html
fi
