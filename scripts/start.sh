#!/bin/sh
# The newcomer's start command: installs what is missing, then runs `vane start`.
set -e
cd "$(dirname "$0")/.."
sh scripts/ensure-node-modules.sh
exec node bin/vane.mjs start "$@"
