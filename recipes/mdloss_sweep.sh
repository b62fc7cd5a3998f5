#!/usr/bin/env bash
# How MDLoss's default weights were chosen: W2U2 students of the Fashion-MNIST small CNN teacher,
# 150 steps of 128 images each, scored on 1,000 held-out validation images (never the test split).
# Prints one JSON line per setting: kd_weight, temperature, mem_weight, best validation top-1.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-runs}
teacher="$runs/fmnist_fp/best.safetensors"
for setting in "0 4 1" "1 4 0" "1 4 1" "1 1 1" "0.5 2 1"; do
  set -- $setting
  out="$runs/sweep_kd$1_t$2_mem$3"
  result=$(mdsnn-zoo distill --teacher "$teacher" --w-bits 2 --u-bits 2 --epochs 3 --max-steps 150 \
           --val-size 1000 --lr 0.02 --warmup-epochs 0 --kd-weight "$1" --temperature "$2" --mem-weight "$3" \
           --out-dir "$out" --no-progress --no-tensorboard 2>/dev/null | tail -1)
  echo "{\"kd_weight\": $1, \"temperature\": $2, \"mem_weight\": $3, \"result\": $result}"
done
