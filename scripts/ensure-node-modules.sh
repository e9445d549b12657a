#!/bin/sh
# Installs the npm packages when node_modules is missing or older than the lock file.
set -e
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "vane: installing npm packages (npm ci)" >&2
  npm ci --no-audit --no-fund >&2
fi
