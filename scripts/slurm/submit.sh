#!/usr/bin/env bash
# Submits a sharded fisheval sweep: an array job of N shards (sweep.sbatch) and a merge
# job that runs when all of them have ended (merge.sbatch). Prints both job IDs.
#
#   scripts/slurm/submit.sh SWEEP.ini N [sbatch options for the shards, e.g. --partition=gpu]
#
# FISHEVAL (default: fisheval on PATH) is the binary the jobs run; WAIT=1 makes this
# script wait until the merge job has ended and exit with its status.
# Resume: run the same command again (same config, same N); finished units are kept.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
CONFIG=${1:?usage: submit.sh SWEEP.ini N [sbatch options]}
N=${2:?usage: submit.sh SWEEP.ini N [sbatch options]}
shift 2
[ -f "$CONFIG" ] || { echo "submit.sh: no config file '$CONFIG'" >&2; exit 2; }
# The result file named in the config (out = RESULTS.h5); the shards are RESULTS.shard-I-of-N.h5.
OUT=$(sed -n 's/^[[:space:]]*out[[:space:]]*=[[:space:]]*\(.*[^[:space:]]\)[[:space:]]*$/\1/p' "$CONFIG" | tail -1)
[ -n "$OUT" ] || { echo "submit.sh: '$CONFIG' names no result file (out = RESULTS.h5)" >&2; exit 2; }
export FISHEVAL=${FISHEVAL:-fisheval}
array=$(sbatch --parsable --export=ALL --array=0-$((N - 1)) "$@" "$here/sweep.sbatch" "$CONFIG")
array=${array%%;*}
wait_flag=()
[ "${WAIT:-0}" = 1 ] && wait_flag=(--wait)
echo "submit.sh: shards: job $array (array 0-$((N - 1))) → ${OUT%.*}.shard-I-of-$N.h5"
rc=0
merge=$(sbatch --parsable --export=ALL --dependency=afterany:"$array" "${wait_flag[@]}" "$here/merge.sbatch" "$OUT" \
        "$N") || rc=$?
echo "submit.sh: merge: job ${merge%%;*} → $OUT"
exit $rc
