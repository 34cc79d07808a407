#!/usr/bin/env bash
# fisheval on a GPU machine that has a CUDA PyTorch 2.x but no package archive: builds
# fisheval against that PyTorch's LibTorch, runs the tests that apply with --device cuda and
# the benchmarks, and writes what it measured to an output folder.
#
#   bash scripts/gpu_check.sh --prepare        # here, on a machine with Debian's archive and PyPI:
#                                              # fills .gpu-debs/ (C++ libraries as .deb files,
#                                              # h5py wheels, the test fixtures) to carry along
#   bash scripts/gpu_check.sh OUT_DIR          # there: build, test, benchmark; tables to OUT_DIR
#
# On the GPU machine the C++ libraries fisheval needs besides LibTorch (HDF5, Boost.
# Program_options, GoogleTest) come from the carried .deb files, unpacked with `dpkg -x` into
# $FISHEVAL_DEPS (default /opt/deps; never into /). The Debian 12 packages are built for the
# same C++ ABI as the PyTorch wheels, and a newer C library loads them. The machine's own
# python3 (FISHEVAL_PYTHON) must import a CUDA torch; h5py is installed from the carried wheels
# into $FISHEVAL_DEPS/python when it is missing.
#
# What runs: the GoogleTest suite and the end-to-end tests (ctest), including
# tests/e2e/test_cuda.py — every method's γ with --device cuda in float32 and float64 against
# the CPU float64 run (tolerances stated there) — then `fisheval bench --device cuda` on the
# built-in mlp and vit-lora in float32 and float64. Results: OUT_DIR/{version.txt,
# ctest.log, test_cuda.log, bench-*.txt, summary.txt}.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CARRY=.gpu-debs

if [ "${1:-}" = "--prepare" ]; then
  mkdir -p "$CARRY/wheels"
  grep -qx '/.gpu-debs/' .gitignore || echo '/.gpu-debs/' >> .gitignore
  # The libraries and their Debian 12 dependencies that a GPU machine may lack.
  (cd "$CARRY" && apt-get download libhdf5-dev libhdf5-103-1 libhdf5-cpp-103-1 libhdf5-hl-100 libhdf5-hl-cpp-100 \
     libsz2 libaec0 libaec-dev libcurl4 libboost-program-options-dev libboost-program-options1.74.0 \
     libboost1.74-dev libgtest-dev googletest zlib1g-dev >/dev/null)
  # h5py for the interpreters a GPU machine may have (the end-to-end tests read HDF5 with it;
  # numpy comes with that machine's torch).
  for py in 3.10 3.11 3.12 3.13; do
    .venv/bin/python -m pip download --quiet --only-binary=:all: --no-deps --python-version "$py" \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d "$CARRY/wheels" h5py \
      || echo "gpu_check: no h5py wheel for Python $py" >&2
  done
  # The fixtures, made here by the pinned PyTorch (tests/fixtures/make_fixtures.py).
  .venv/bin/python tests/fixtures/make_fixtures.py "$CARRY/fixtures" >/dev/null
  du -sh "$CARRY"
  echo "gpu_check: carry $CARRY (64 MiB at most) and run: bash scripts/gpu_check.sh OUT_DIR" >&2
  exit 0
fi

OUT=${1:?usage: scripts/gpu_check.sh OUT_DIR | --prepare}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PY=${FISHEVAL_PYTHON:-$(command -v python3)}
DEPS=${FISHEVAL_DEPS:-/opt/deps}
log() { echo "gpu_check: $*" | tee -a "$OUT/summary.txt" >&2; }
: >"$OUT/summary.txt"

"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device visible to torch'; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))" \
  | tee "$OUT/python-torch.txt"

# --- the carried C++ libraries and h5py ---------------------------------------------------
if [ -d "$CARRY" ]; then
  mkdir -p "$DEPS"
  for deb in "$CARRY"/*.deb; do dpkg -x "$deb" "$DEPS"; done
fi
export LD_LIBRARY_PATH="$DEPS/usr/lib/x86_64-linux-gnu:$DEPS/usr/lib/x86_64-linux-gnu/hdf5/serial${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if ! "$PY" -c "import h5py" 2>/dev/null; then
  "$PY" -m pip install --quiet --no-index --no-deps --find-links "$CARRY/wheels" --target "$DEPS/python" h5py
  export PYTHONPATH="$DEPS/python${PYTHONPATH:+:$PYTHONPATH}"
fi

# --- build ------------------------------------------------------------------------------
GEN=(-G Ninja)
command -v ninja >/dev/null || GEN=(-G "Unix Makefiles")
BUILD=build-gpu
t0=$(date +%s)
cmake -S . -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DFISHEVAL_PYTHON="$PY" \
  -DCMAKE_PREFIX_PATH="$DEPS/usr" -DHDF5_ROOT="$DEPS/usr/lib/x86_64-linux-gnu/hdf5/serial" \
  -DBoost_ROOT="$DEPS/usr" -DGTest_ROOT="$DEPS/usr" -DCMAKE_INCLUDE_PATH="$DEPS/usr/include" \
  -DCMAKE_LIBRARY_PATH="$DEPS/usr/lib/x86_64-linux-gnu" >"$OUT/cmake.log" 2>&1
cmake --build "$BUILD" -j"$(nproc)" >"$OUT/build.log" 2>&1
log "built in $(( $(date +%s) - t0 )) s"
"$BUILD/fisheval" --version | tee "$OUT/version.txt"

# --- tests ------------------------------------------------------------------------------
if [ -d "$CARRY/fixtures" ]; then mkdir -p "$BUILD/fixtures" && cp -r "$CARRY/fixtures/." "$BUILD/fixtures/"; fi
t0=$(date +%s)
# The Slurm, demo and report-rendering tests need system tools a GPU machine need not have.
if ctest --test-dir "$BUILD" -j4 --output-on-failure -E 'e2e_test_(slurm|report|demo)' >"$OUT/ctest.log" 2>&1; then
  log "ctest passed in $(( $(date +%s) - t0 )) s"
else
  log "ctest FAILED (see ctest.log)"
fi
grep -E "tests passed|Failed|Skipped" "$OUT/ctest.log" | tee -a "$OUT/summary.txt" || true
(cd "$BUILD" && FISHEVAL_FIXTURES=$PWD/fixtures FISHEVAL_BINARY=$PWD/fisheval FISHEVAL_SOURCE=$ROOT \
   FISHEVAL_WORK=$PWD/e2e-work "$PY" "$ROOT/tests/e2e/test_cuda.py") >"$OUT/test_cuda.log" 2>&1 \
  && log "test_cuda passed" || log "test_cuda FAILED (see test_cuda.log)"

# --- benchmarks -------------------------------------------------------------------------
for model in mlp vit-lora; do
  for dtype in float32 float64; do
    "$BUILD/fisheval" bench --model "$model" --device cuda --dtype "$dtype" --batch-size 32 \
      >"$OUT/bench-$model-$dtype.txt" 2>&1 && log "bench $model $dtype done" || log "bench $model $dtype FAILED"
  done
done
log "done: $OUT"
