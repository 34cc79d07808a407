#!/usr/bin/env bash
# A fuzzing campaign: every loader until it has tried INPUTS inputs (or MAX_SECONDS have
# passed), one target at a time at the lowest CPU priority, the corpus kept between runs
# (build-fuzz/corpus/), a target started again after a finding. Prints the table of
# docs/RELIABILITY.md (inputs, time, corpus, findings per target) and keeps it in
# build-fuzz/campaign-DATE.txt.
#
#   scripts/fuzz_campaign.sh [INPUTS (default 1000000)] [MAX_SECONDS_PER_TARGET (default 21600)] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
INPUTS=${1:-1000000}
MAX_SECONDS=${2:-21600}
shift 2 || shift $# || true
BUILD=${FISHEVAL_FUZZ_BUILD_DIR:-build-fuzz}
status=0
FISHEVAL_FUZZ_RUNS=$INPUTS FISHEVAL_FUZZ_KEEP_GOING=1 nice -n 19 bash scripts/fuzz.sh "$MAX_SECONDS" "$@" || status=$?
out=$BUILD/campaign-$(date +%Y%m%d-%H%M%S).txt
{
  echo "fuzzing campaign, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, up to $INPUTS inputs or ${MAX_SECONDS} s per target"
  cat "$BUILD/fuzz-summary.txt"
} | tee "$out"
echo "fuzz_campaign.sh: table in $out"
exit $status
