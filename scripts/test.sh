#!/usr/bin/env bash
# Sets up (Debian packages, build) and runs every test: the GoogleTest suite and the
# end-to-end tests, after the fixtures are made by real PyTorch.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD_DIR=${FISHEVAL_BUILD_DIR:-build}
ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$(nproc)" "$@"
