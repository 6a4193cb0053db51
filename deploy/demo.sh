#!/usr/bin/env bash
# One command from a fresh Debian 12 clone to the demo: install dependencies, build, run `tandem demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
bash deploy/build.sh
exec ./build/bin/tandem demo "$@"
