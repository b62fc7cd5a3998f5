#!/usr/bin/env bash
# Train and publish one Fashion-MNIST zoo family: the float teacher, W2U2 naive QAT, W2U2 MD and
# W4U4 MD students trained as long as each other, then export each (packed weights, sha256, test top-1
# as `mdsnn-zoo eval NAME` measures it) into mdsnn_zoo/zoo/. Every step resumes (--resume), so the
# script can be rerun after an interruption; a finished step returns at once.
#   recipes/fmnist_zoo.sh ARCH ARCH_KWARGS_JSON TEACHER_EPOCHS STUDENT_EPOCHS
#   recipes/fmnist_zoo.sh vgg9 '{"width":0.5}' 8 2
set -euo pipefail
cd "$(dirname "$0")/.."
arch=$1 kwargs=$2 teacher_epochs=$3 student_epochs=$4
runs=${RUNS:-runs}
base="$arch.fmnist_t4"
teacher="$runs/${base}_fp/best.safetensors"
common=(--arch "$arch" --arch-kwargs "$kwargs" --checkpoint-every 200 --resume --no-progress)
student=(--epochs "$student_epochs" --lr 0.02 --warmup-epochs 0)

run() {  # NAME COMMAND...: train (or resume) into runs/NAME, then publish it as zoo entry NAME
  local name=$1; shift
  "$@" --out-dir "$runs/$name"
  python recipes/export_zoo.py "$name" "$runs/$name/best.safetensors" \
    --recipe "$(python -c 'import shlex, sys; print(shlex.join(sys.argv[1:]))' "$@" --out-dir "$runs/$name")"
}

run "${base}_fp" mdsnn-zoo train "${common[@]}" --epochs "$teacher_epochs" --lr 0.1
run "${base}_w2u2_qat" mdsnn-zoo train --init "$teacher" --w-bits 2 --u-bits 2 "${common[@]}" "${student[@]}"
run "${base}_w2u2_md" mdsnn-zoo distill --teacher "$teacher" --w-bits 2 --u-bits 2 "${common[@]}" "${student[@]}"
run "${base}_w4u4_md" mdsnn-zoo distill --teacher "$teacher" --w-bits 4 --u-bits 4 "${common[@]}" "${student[@]}"
