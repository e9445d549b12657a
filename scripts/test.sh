#!/bin/sh
# The whole test suite with its own set-up: npm packages, lint, types, then vitest
# (which installs redis-server and prometheus itself when missing). Ends with
# the line "tests: N passed, N failed".
cd "$(dirname "$0")/.."
sh scripts/ensure-node-modules.sh || exit 1
status=0
echo "== biome (lint and format)"
npx biome ci . || status=1
echo "== tsc --noEmit (types)"
npx tsc --noEmit -p . || status=1
echo "== vitest"
mkdir -p .test-results
rm -f .test-results/vitest.json
npx vitest run --reporter=default --reporter=json --outputFile.json=.test-results/vitest.json "$@" || status=1
node scripts/test-summary.mjs .test-results/vitest.json || status=1
exit $status
