#!/usr/bin/env bash
# Fuzzes every loader with libFuzzer for a bounded time: HDF5 batch files, IDX files,
# series manifests, TorchScript and native checkpoints, result files, and the zip structure
# check of checkpoints (tests/fuzz/fuzz_*.cpp, built with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer in build-fuzz/).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET (default 60)] [TARGET...]
#       TARGET: hdf5_data idx manifest torchscript results zip (default: all)
#
# Environment:
#   FISHEVAL_BINARY          fisheval binary that makes the result-file seeds (default build/fisheval)
#   FISHEVAL_FUZZ_BUILD_DIR  build folder (default build-fuzz)
#   FISHEVAL_FUZZ_RUNS       stop a target after this many inputs (default: no limit, time only)
#   FISHEVAL_FUZZ_KEEP_GOING 1: after a finding, start the target again (same corpus) until
#                            its time or inputs are used (a campaign: scripts/fuzz_campaign.sh);
#                            default: a finding ends that target's run
#   FISHEVAL_FUZZ_WORKERS    fuzzing processes per target, on one corpus (default 1)
#
# Seeds: the test fixtures (real PyTorch checkpoints, zip archives and HDF5 data, made by
# tests/fixtures/make_fixtures.py), small result files made by the fisheval binary, small
# IDX files, and the inputs of tests/fuzz-regressions/. The corpus grows in
# build-fuzz/corpus/TARGET and is kept between runs. Findings (crash-*, leak-*, oom-*,
# timeout-*) go to build-fuzz/findings/TARGET/; a table (inputs, time, corpus, findings)
# to build-fuzz/fuzz-summary.txt. Inputs refused by the crash guard (its child crashed or
# ran out of time: the expected refusal of a file that crashes or hangs HDF5) are no
# findings: they are counted ("guarded refusals") and the first ones kept in
# build-fuzz/guarded/TARGET/. Every saved input is run once more on its own; a time-out
# or a state-dependent HDF5 error that does not reproduce there moves to
# findings/TARGET/not-reproduced/ (counted apart, see the comment at the end). Exit status 1
# when anything was found. A finding, once fixed, belongs in tests/fuzz-regressions/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-60}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(hdf5_data idx manifest torchscript results zip)
BUILD=${FISHEVAL_FUZZ_BUILD_DIR:-build-fuzz}
RUNS_LIMIT=${FISHEVAL_FUZZ_RUNS:-0}
KEEP_GOING=${FISHEVAL_FUZZ_KEEP_GOING:-0}
WORKERS=${FISHEVAL_FUZZ_WORKERS:-1}
ROOT=$PWD

cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_C_COMPILER=clang -DFISHEVAL_FUZZ=ON -DFISHEVAL_BUILD_TESTS=OFF >/dev/null
ninja -C "$BUILD" -j"$(nproc)" $(printf "fuzz_%s " "${TARGETS[@]}")
BUILD_ABS=$(cd "$BUILD" && pwd)

# --- seeds -------------------------------------------------------------------------------
SEEDS=$BUILD/seeds
FIX=$BUILD/fixtures
if [ ! -f "$FIX/zips/native.pt.map" ]; then .venv/bin/python tests/fixtures/make_fixtures.py "$FIX" >/dev/null 2>&1; fi
rm -rf "$SEEDS"
mkdir -p "$SEEDS"/{hdf5_data,idx,manifest,torchscript,results,zip}
# Small seeds: the fuzzer mutates them faster and reaches their structures sooner.
cp "$FIX"/toy_linear.h5 "$FIX"/seq_ce.h5 "$FIX"/conv_ce.h5 "$SEEDS/hdf5_data/"
cp "$FIX"/toy_linear.pt "$FIX"/zips/torchscript.pt "$FIX"/zips/native.pt "$SEEDS/torchscript/"
cp "$FIX"/zips/*.zip "$FIX"/zips/*.pt "$FIX"/toy_linear.pt "$SEEDS/zip/"
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
  "$BIN" eval --checkpoints "$FIX/toy_linear.pt" --data "$FIX/toy_linear.h5" --batch-size 2 --num-batches 1 \
    --methods sgd,ng-cg --damping 0 --cg-max-iter 3 --quiet --out "$SEEDS/results/small.h5" --overwrite
  "$BIN" eval --series "$FIX/series" --data "$FIX/series.h5" --batch-size 4 --num-batches 2 \
    --methods sgd,ef --damping 0,1e-3 --quiet --shard 1/2 --out "$SEEDS/results/shard.h5" --overwrite
else
  echo "fuzz.sh: no fisheval binary at $BIN: the results target starts without a result-file seed" >&2
fi
for t in hdf5-data:hdf5_data idx:idx manifest:manifest torchscript:torchscript results:results; do
  src=tests/fuzz-regressions/${t%%:*}
  [ -d "$src" ] && find "$src" -type f ! -name '*.md' -exec cp {} "$SEEDS/${t##*:}/" \;
done

# --- runs --------------------------------------------------------------------------------
# ASan/UBSan options: LibTorch and HDF5 are not instrumented (docs/RELIABILITY.md). A
# smaller quarantine of freed memory (16 MB, enough for the memory of one input) keeps the
# fuzzing process small, and so the crash guard's fork per input cheap. Reports are not
# symbolized while fuzzing (HDF5's own memory errors in guard children are reported and
# recognised by module; symbolizing each cost 150 ms); every finding is run once more,
# symbolized, into FINDING.txt.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:detect_container_overflow=0:allocator_may_return_null=1:symbolize=0:quarantine_size_mb=16}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$ROOT/scripts/sanitizers/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:suppressions=$ROOT/scripts/sanitizers/ubsan.supp}
SUMMARY=$BUILD/fuzz-summary.txt
{
  echo "| target | inputs | time (s) | inputs/s | corpus (files, KB) | runs | guarded refusals | not reproduced (HDF5 state, time-outs) | findings |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
} >"$SUMMARY"
# One fuzzing process of target $1 (worker $2 of WORKERS, all on the same corpus), until
# SECONDS_PER_TARGET have passed or it has tried $3 inputs (0: no limit); started again
# after a finding when KEEP_GOING. Writes "INPUTS RUNS" to build-fuzz/.fuzz-count-TARGET-WORKER.
fuzz_worker() {
  local t=$1 w=$2 limit=$3 total=0 runs=0 start left log rc n
  local corpus=$BUILD/corpus/$t findings=$BUILD/findings/$t
  start=$(date +%s)
  while :; do
    left=$((SECONDS_PER_TARGET - ($(date +%s) - start)))
    [ "$left" -gt 0 ] || break
    local run_args=()
    if [ "$limit" -gt 0 ]; then
      [ "$total" -lt "$limit" ] || break
      run_args=(-runs=$((limit - total)))
    fi
    log=$BUILD/fuzz-$t.log
    [ "$WORKERS" -eq 1 ] || log=$BUILD/fuzz-$t-w$w.log
    [ "$runs" -eq 0 ] || log=${log%.log}.$runs.log
    # In-process (no -fork: a forked job would load LibTorch again, which costs seconds).
    set +e
    ASAN_OPTIONS=$ASAN_OPTIONS$asan_extra "$BUILD/tests/fuzz/fuzz_$t" "$corpus" "$SEEDS/$t" -max_total_time="$left" \
      "${run_args[@]}" -timeout=20 -rss_limit_mb=3072 -malloc_limit_mb=$malloc_limit -max_len=$max_len \
      -artifact_prefix="$findings/" -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    n=$(grep -aoE '^stat::number_of_executed_units: *[0-9]+' "$log" | tail -1 | grep -oE '[0-9]+$' || true)
    [ -n "$n" ] || n=$(grep -aoE '^#[0-9]+' "$log" | tail -1 | tr -d '#' || true)
    total=$((total + ${n:-0}))
    runs=$((runs + 1))
    [ "$rc" -ne 0 ] && [ "$KEEP_GOING" = 1 ] || break
  done
  echo "$total $runs" >"$BUILD/.fuzz-count-$t-$w"
}

found=0
for t in "${TARGETS[@]}"; do
  corpus=$BUILD/corpus/$t findings=$BUILD/findings/$t
  export FISHEVAL_FUZZ_GUARDED_DIR=$BUILD_ABS/guarded/$t
  mkdir -p "$corpus" "$findings" "$FISHEVAL_FUZZ_GUARDED_DIR"
  guarded_before=$({ cat "$FISHEVAL_FUZZ_GUARDED_DIR"/*.count 2>/dev/null || true; } | wc -l)
  marker=$BUILD/.fuzz-start-$t
  touch "$marker"
  # HDF5 itself allocates, and fills, what a damaged variable-length string declares (1.7
  # GB for results/fuzz-oom-vlen-length.h5) before it fails: not a finding of fisheval's,
  # and seconds per such input. In the HDF5 targets an allocation past 128 MB fails instead
  # (as on a machine with little memory; fisheval's own arrays stay below the 64 MB load
  # limit), and HDF5 refuses the file at once.
  malloc_limit=1024 asan_extra= max_len=65536
  case $t in hdf5_data | results) asan_extra=:max_allocation_size_mb=128 max_len=32768 ;; esac
  start=$(date +%s)
  for w in $(seq 1 "$WORKERS"); do
    fuzz_worker "$t" "$w" "$((RUNS_LIMIT > 0 ? (RUNS_LIMIT + WORKERS - 1) / WORKERS : 0))" &
  done
  wait
  total=0 runs=0
  for w in $(seq 1 "$WORKERS"); do
    read -r n r <"$BUILD/.fuzz-count-$t-$w"
    total=$((total + n)) runs=$((runs + r))
  done
  seconds=$(($(date +%s) - start))
  files=$(find "$corpus" -type f | wc -l)
  kb=$(du -sk "$corpus" | cut -f1)
  guarded=$(($({ cat "$FISHEVAL_FUZZ_GUARDED_DIR"/*.count 2>/dev/null || true; } | wc -l) - guarded_before))
  # Every saved input runs once more on its own (a fresh process, symbolized) into
  # FINDING.txt. Two kinds that do not reproduce there are no findings, and move to
  # findings/TARGET/not-reproduced/: a time-out (the fuzzing process was starved: the
  # campaign runs at the lowest priority beside other work), and an HDF5-own memory error
  # in the fuzzing process after the guard server had read the file to its end (the
  # harness kept that input in guarded/TARGET/hdf5-state/; tests/fuzz/fuzz_support.h says
  # why the fisheval binary cannot meet it). Everything else is a finding.
  state_sums=$(sha1sum "$FISHEVAL_FUZZ_GUARDED_DIR"/hdf5-state/* 2>/dev/null | cut -d' ' -f1 || true)
  new=0 unreproduced=0
  for f in $(find "$findings" -maxdepth 1 -type f ! -name '*.txt' -newer "$marker"); do
    set +e
    ASAN_OPTIONS=${ASAN_OPTIONS/symbolize=0/symbolize=1}$asan_extra timeout 120 "$BUILD/tests/fuzz/fuzz_$t" \
      -malloc_limit_mb=$malloc_limit "$f" >"$f.txt" 2>&1
    rc=$?
    set -e
    base=$(basename "$f") why=
    if [ "$rc" -eq 0 ]; then
      case $base in
        timeout-*) why="a time-out that did not reproduce" ;;
        crash-*) grep -qx "${base#crash-}" <<<"$state_sums" && why="HDF5's own memory error after the guard server's read, not reproduced" ;;
      esac
    fi
    if [ -n "$why" ]; then
      mkdir -p "$findings/not-reproduced"
      mv "$f" "$f.txt" "$findings/not-reproduced/"
      unreproduced=$((unreproduced + 1))
      echo "    not reproduced: $base ($why)" | tee -a "$SUMMARY"
    else
      new=$((new + 1))
      echo "    finding: $f" | tee -a "$SUMMARY"
    fi
  done
  echo "| $t | $total | $seconds | $((total / (seconds > 0 ? seconds : 1))) | $files, $kb | $runs | $guarded | $unreproduced | $new |" |
    tee -a "$SUMMARY"
  [ "$new" -eq 0 ] || found=1
done
echo "fuzz.sh: summary in $SUMMARY"
exit $found
