#!/usr/bin/env bash
# The one command: installs what is missing and builds (scripts/setup.sh), then runs
# `fisheval demo` — trains an MLP on Fashion-MNIST with iEF, scores every update method
# on its training stages and prints the summary table. Outputs go to demo-output/
# (or --out DIR); extra arguments are passed to `fisheval demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD_DIR=${FISHEVAL_BUILD_DIR:-build}
exec "$BUILD_DIR/fisheval" demo "$@"
