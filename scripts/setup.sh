#!/usr/bin/env bash
# Sets up everything fisheval needs and builds it into build/ (Release). Safe to run again:
# it installs only what is missing and rebuilds only what changed.
#
# 1. Debian packages (only those missing): compilers and CMake, the C++ libraries (HDF5,
#    Boost.Program_options, GoogleTest), Fashion-MNIST, and the system tools of the tests
#    (Chromium, Slurm and munge, clang for the fuzzers).
# 2. The project environment .venv/ (python3 -m venv) with every Python package pinned in
#    requirements.txt: PyTorch 2.x from PyPI, whose wheel carries LibTorch built with CUDA
#    (fisheval is built against it), h5py, matplotlib, transformers, peft, and the peers the
#    benchmarks compare with. Reinstalled only when requirements.txt changes.
# 3. CMake configure and build against that LibTorch (cmake/FishevalTorch.cmake).
#
# Environment: FISHEVAL_BASE_PYTHON (interpreter that makes the venv, default python3),
# FISHEVAL_BUILD_DIR, FISHEVAL_CMAKE_ARGS, FISHEVAL_EXTRA_PACKAGES.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(cmake ninja-build g++ pkg-config libhdf5-dev libboost-program-options-dev
          libgtest-dev zlib1g-dev dataset-fashion-mnist
          chromium            # tests/e2e/test_report.py renders the HTML report headless
          slurm-wlm munge     # tests/e2e/test_slurm.py: a real one-node Slurm cluster (scripts/slurm/)
          clang libclang-rt-14-dev    # scripts/fuzz.sh: libFuzzer targets of the loaders
          ${FISHEVAL_EXTRA_PACKAGES:-})
BASE_PYTHON=${FISHEVAL_BASE_PYTHON:-python3}
# A python3 without the venv module (Debian's own) needs python3-venv.
if ! "$BASE_PYTHON" -c "import venv, ensurepip" >/dev/null 2>&1; then PACKAGES+=(python3-venv); fi
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

# --- the project environment ---------------------------------------------------------
VENV=.venv
stamp=$VENV/.fisheval-requirements
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating the project environment $VENV ($("$BASE_PYTHON" --version))" >&2
  "$BASE_PYTHON" -m venv "$VENV"
fi
if ! cmp -s requirements.txt "$stamp"; then
  echo "setup: installing requirements.txt into $VENV (PyTorch with CUDA libraries: several GB, a few minutes)" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r requirements.txt >&2
  cp requirements.txt "$stamp"
fi

# --- build -----------------------------------------------------------------------------
BUILD_DIR=${FISHEVAL_BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release ${FISHEVAL_CMAKE_ARGS:-} >&2
cmake --build "$BUILD_DIR" -j"$(nproc)" >&2
echo "setup: built $BUILD_DIR/fisheval" >&2
