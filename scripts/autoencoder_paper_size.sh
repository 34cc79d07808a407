#!/bin/bash
# The Fishy paper's own autoencoder network (--widths paper, 6.3 M parameters): each optimiser
# at the rate that won on the small network, 150 steps of batch 256 (docs/RESULTS.md).
# Usage: bash scripts/autoencoder_paper_size.sh [OUT]   (FISHEVAL=path/to/fisheval; default build/fisheval)
F=${FISHEVAL:-build/fisheval}
OUT=${1:-autoencoder-paper}
mkdir -p "$OUT"
cd "$OUT"; case "$F" in /*) ;; *) F="$OLDPWD/$F";; esac
for o in adamw:0.003 fishy:0.01 shampoo:0.01 fim-shampoo:0.01 kfac:0.01; do
  name=${o%%:*}; lr=${o##*:}
  extra=""; [ $name = adamw ] && extra="--weight-decay 0"
  $F train --model autoencoder --widths paper --optimizer $name --lr $lr $extra \
    --data fashion-mnist-pixels:train:20000 --test-data fashion-mnist-pixels:test:2000 --eval-samples 2000 \
    --max-steps 150 --epochs 100 --batch-size 256 --save-every 50 --seed 0 --out runs/$name --overwrite --quiet
  echo "$name $(tail -1 runs/$name/manifest.csv)"
done
