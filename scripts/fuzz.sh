#!/usr/bin/env bash
# Fuzzes every loader with libFuzzer for a bounded time: HDF5 batch files, IDX files,
# series manifests, TorchScript checkpoints and result files (tests/fuzz/fuzz_*.cpp,
# built with clang, AddressSanitizer and UndefinedBehaviorSanitizer in build-fuzz/).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET (default 60)] [TARGET...]
#       TARGET: hdf5_data idx manifest torchscript results (default: all)
#
# Seeds: the test fixtures (real PyTorch checkpoints and HDF5 data, made by
# tests/fixtures/make_fixtures.py), a result file made by the fisheval binary of
# FISHEVAL_BINARY or build/ when there is one, small IDX files, and the inputs of
# tests/fuzz-regressions/. The corpus grows in build-fuzz/corpus/TARGET between runs.
# Findings (crash-*, leak-*, oom-*, timeout-*) go to build-fuzz/findings/TARGET/; a
# summary (runs, corpus size, findings) to build-fuzz/fuzz-summary.txt. Exit status 1
# when anything was found. A finding, once fixed, belongs in tests/fuzz-regressions/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-60}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(hdf5_data idx manifest torchscript results)
BUILD=${FISHEVAL_FUZZ_BUILD_DIR:-build-fuzz}
ROOT=$PWD

cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_C_COMPILER=clang -DFISHEVAL_FUZZ=ON -DFISHEVAL_BUILD_TESTS=OFF >/dev/null
ninja -C "$BUILD" -j"$(nproc)" $(printf "fuzz_%s " "${TARGETS[@]}")

# --- seeds -------------------------------------------------------------------------------
SEEDS=$BUILD/seeds
FIX=$BUILD/fixtures
if [ ! -f "$FIX/series/manifest.csv" ]; then .venv/bin/python tests/fixtures/make_fixtures.py "$FIX" >/dev/null; fi
mkdir -p "$SEEDS"/{hdf5_data,idx,manifest,torchscript,results}
cp "$FIX"/*.h5 "$SEEDS/hdf5_data/"
cp "$FIX"/toy_linear.pt "$FIX"/mlp_tanh_ce.pt "$FIX"/lora_ce.pt "$SEEDS/torchscript/"
cp "$FIX"/series/manifest.csv "$SEEDS/manifest/"
printf 'path,step,epoch\n/a/b.pt,0,1\nc.pt,10,2\n' >"$SEEDS/manifest/extra.csv"
.venv/bin/python - "$SEEDS/idx" <<'PY'
import gzip, struct, sys
out = sys.argv[1]
def idx(dims, payload):
    return bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload
open(f"{out}/images.idx", "wb").write(idx([3, 4, 4], bytes(range(48))))
open(f"{out}/labels.idx", "wb").write(idx([5], bytes([0, 1, 2, 9, 4])))
open(f"{out}/images.idx.gz", "wb").write(gzip.compress(idx([2, 3, 3], bytes(range(18)))))
PY
BIN=${FISHEVAL_BINARY:-build/fisheval}
if [ -x "$BIN" ]; then
  "$BIN" eval --series "$FIX/series" --data "$FIX/series.h5" --batch-size 4 --num-batches 2 \
    --methods sgd,ef,ng-cg --damping 0,1e-3 --cg-max-iter 5 --quiet --out "$SEEDS/results/seed.h5" --overwrite
  "$BIN" eval --series "$FIX/series" --data "$FIX/series.h5" --batch-size 4 --num-batches 2 \
    --methods sgd,ef --damping 0 --quiet --shard 1/2 --out "$SEEDS/results/shard.h5" --overwrite
else
  echo "fuzz.sh: no fisheval binary at $BIN: the results target starts without a result-file seed" >&2
fi
for t in hdf5-data:hdf5_data idx:idx manifest:manifest torchscript:torchscript results:results; do
  src=tests/fuzz-regressions/${t%%:*}
  [ -d "$src" ] && find "$src" -type f ! -name '*.md' -exec cp {} "$SEEDS/${t##*:}/" \;
done

# --- runs --------------------------------------------------------------------------------
# ASan/UBSan options: LibTorch and HDF5 are not instrumented (docs/RELIABILITY.md).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:detect_container_overflow=0:allocator_may_return_null=1:symbolize=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$ROOT/scripts/sanitizers/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:suppressions=$ROOT/scripts/sanitizers/ubsan.supp}
SUMMARY=$BUILD/fuzz-summary.txt
: >"$SUMMARY"
found=0
for t in "${TARGETS[@]}"; do
  corpus=$BUILD/corpus/$t findings=$BUILD/findings/$t
  mkdir -p "$corpus" "$findings"
  log=$BUILD/fuzz-$t.log
  set +e
  # In-process (no -fork: every forked job would load LibTorch again, which costs seconds);
  # a finding ends this target's run and is saved.
  "$BUILD/tests/fuzz/fuzz_$t" "$corpus" "$SEEDS/$t" -max_total_time="$SECONDS_PER_TARGET" -timeout=20 -rss_limit_mb=3072 -malloc_limit_mb=1024 -max_len=65536 \
    -artifact_prefix="$findings/" -print_final_stats=1 >"$log" 2>&1
  set -e
  runs=$(grep -aoE '^Done [0-9]+ runs|^#[0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')
  crashes=$(find "$findings" -type f | wc -l)
  line="$t: ${runs:-0} inputs tried in ${SECONDS_PER_TARGET}s, corpus $(ls "$corpus" | wc -l) files, $crashes finding(s)"
  echo "$line" | tee -a "$SUMMARY"
  find "$findings" -type f -printf "    %p\n" | tee -a "$SUMMARY"
  [ "$crashes" -eq 0 ] || found=1
done
echo "fuzz.sh: summary in $SUMMARY"
exit $found
