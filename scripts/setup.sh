#!/usr/bin/env bash
# Installs the Debian packages fisheval needs (only those missing) and builds it into
# build/ (Release). Safe to run again: it only rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium: tests/e2e/test_report.py renders the HTML report headless.
PACKAGES=(cmake ninja-build g++ pkg-config libtorch-dev libhdf5-dev libboost-program-options-dev libfmt-dev
          libgtest-dev zlib1g-dev python3-torch python3-h5py python3-matplotlib python3-numpy
          dataset-fashion-mnist chromium
          libopenblas0-openmp   # an optimised BLAS/LAPACK for LibTorch: Debian's default is the
                                # reference netlib build, about 3x slower on every matrix product
          slurm-wlm munge    # tests/e2e/test_slurm.py: a real one-node Slurm cluster (scripts/slurm/)
          clang libclang-rt-14-dev    # scripts/fuzz.sh: libFuzzer targets of the loaders
          ${FISHEVAL_EXTRA_PACKAGES:-})
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

BUILD_DIR=${FISHEVAL_BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release ${FISHEVAL_CMAKE_ARGS:-} >&2
cmake --build "$BUILD_DIR" -j"$(nproc)" >&2
echo "setup: built $BUILD_DIR/fisheval" >&2
