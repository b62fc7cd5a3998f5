#!/usr/bin/env bash
# The real-data check of membrane distillation (issue: MD-SNN training): on Fashion-MNIST, the small
# CNN at T=4, a float teacher, then W2U2 students trained the same number of epochs from it, one with
# cross-entropy only (naive QAT), one with MD (CE + KD + membrane MSE), then both evaluated on the
# 10,000-image test split. Each step resumes where it stopped (--resume), so the script can be rerun.
# MD keeps the membrane step Δ at its initial value (distill's default, --no-learn-step); naive QAT learns
# it, and a third student, QAT with Δ kept fixed, separates the effect of distillation from that choice.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-runs}
teacher_epochs=${TEACHER_EPOCHS:-5}
student_epochs=${STUDENT_EPOCHS:-3}

mdsnn-zoo train --arch small_cnn --epochs "$teacher_epochs" --lr 0.1 \
  --out-dir "$runs/fmnist_fp" --checkpoint-every 100 --resume --no-progress
teacher="$runs/fmnist_fp/best.safetensors"
common=(--w-bits 2 --u-bits 2 --epochs "$student_epochs" --lr 0.02 --warmup-epochs 0 --checkpoint-every 100
        --resume --no-progress)
mdsnn-zoo train --init "$teacher" "${common[@]}" --out-dir "$runs/fmnist_w2u2_qat"
mdsnn-zoo train --init "$teacher" "${common[@]}" --no-learn-step --out-dir "$runs/fmnist_w2u2_qat_fixed_step"
mdsnn-zoo distill --teacher "$teacher" "${common[@]}" --out-dir "$runs/fmnist_w2u2_md"

for run in fmnist_fp fmnist_w2u2_qat fmnist_w2u2_qat_fixed_step fmnist_w2u2_md; do
  mdsnn-zoo eval "$runs/$run/best.safetensors" --teacher "$teacher" --json | tail -1
done
