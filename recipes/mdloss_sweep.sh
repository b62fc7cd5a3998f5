#!/usr/bin/env bash
# How MDLoss's default weights were chosen: W2U2 students of the Fashion-MNIST small CNN teacher,
# one epoch on 12,000 training images each, scored on the held-out validation images (never the
# test split). Prints one JSON line per setting: kd_weight, mem_weight, best validation top-1.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-runs}
teacher="$runs/fmnist_fp/best.safetensors"
for setting in "0 0" "1 0" "0 1" "1 1" "1 0.3" "1 3"; do
  set -- $setting
  out="$runs/sweep_kd$1_mem$2"
  result=$(mdsnn-zoo distill --teacher "$teacher" --w-bits 2 --u-bits 2 --epochs 1 --train-subset 12000 \
           --lr 0.02 --warmup-epochs 0 --kd-weight "$1" --mem-weight "$2" --out-dir "$out" --no-progress \
           --no-tensorboard 2>/dev/null | tail -1)
  echo "{\"kd_weight\": $1, \"mem_weight\": $2, \"result\": $result}"
done
