#!/usr/bin/env bash
# Train and publish one Fashion-MNIST zoo family (the images, or their event recordings with
# DATASET=n-fashion-mnist TAG=nfmnist TIME_STEPS=10): the float teacher, W2U2 naive QAT, W2U2 MD and
# W4U4 MD students trained as long as each other, then export each (packed weights, sha256, test top-1
# as `mdsnn-zoo eval NAME` measures it) into mdsnn_zoo/zoo/. Every step resumes (--resume), so the
# script can be rerun after an interruption; a finished step returns at once. Nothing is exported
# until every variant has finished (the zoo never holds students of another teacher), and an entry
# already exported from the same checkpoint is not exported again. Then it draws the family's
# validation curves into docs/curves_ARCH.TAG_tT.png.
#   recipes/fmnist_zoo.sh ARCH ARCH_KWARGS_JSON TEACHER_EPOCHS STUDENT_EPOCHS
#   recipes/fmnist_zoo.sh vgg9 '{"width":0.5}' 40 10
# Environment: VARIANTS (default "fp w2u2_qat w2u2_md w4u4_md": the entries to train and publish; the
# teacher is trained, or found finished, in any case), TEACHER_RUN (the teacher's run folder under
# RUNS, default ARCH.TAG_tT_fp), DATASET (default fashion-mnist), TAG (the entries' data tag, default
# fmnist), TIME_STEPS (default 4), STUDENT_ARGS (more flags for every student, e.g. "--grad-clip 5"),
# STUDENT_LR (the students' learning rate, default 0.02), RUN_SUFFIX (appended to the students' run folders,
# e.g. _lr005, so that students of another schedule do not resume the finished ones),
# TEACHER_ARGS (more flags for the teacher), TWIN_EPOCHS (if set: first train the network's clipped-ReLU
# twin for that many epochs at T=1, into RUNS/ARCH.TAG_t1_relu, and start the teacher from it at
# lr TEACHER_LR (default 0.02) without warm-up; the teacher's recipe is then both commands; with TWIN_KD=1
# the teacher also learns the twin's soft labels, train --teacher), SEED
# (default 0; another seed trains the students into RUN_s<SEED> folders and ships nothing: a repeat to
# measure the spread, whose test top-1 export_zoo.py --repeat records in the shipped entries; it trains no
# teacher but needs the family's finished one),
# MIN_TEACHER_VAL (if set: when the teacher's best validation top-1 is not above it, say so and stop
# before the students, exit 0, so a queue goes on to its next family), MIN_TWIN_VAL (the same for the
# twin, before the SNN teacher), RUNS (default runs).
set -euo pipefail
cd "$(dirname "$0")/.."
arch=$1 kwargs=$2 teacher_epochs=$3 student_epochs=$4
runs=${RUNS:-runs}
seed=${SEED:-0}
variants=" ${VARIANTS:-fp w2u2_qat w2u2_md w4u4_md} "
dataset=${DATASET:-fashion-mnist} tag=${TAG:-fmnist} time_steps=${TIME_STEPS:-4}
base="$arch.${tag}_t$time_steps"
teacher_run=${TEACHER_RUN:-${base}_fp}
teacher="$runs/$teacher_run/best.safetensors"
shared=(--arch "$arch" --arch-kwargs "$kwargs" --checkpoint-every 200 --resume --no-progress)
common=(--dataset "$dataset" --time-steps "$time_steps" "${shared[@]}")
read -ra extra <<< "${STUDENT_ARGS:-}"
read -ra teacher_extra <<< "${TEACHER_ARGS:-}"
student=(--epochs "$student_epochs" --lr "${STUDENT_LR:-0.02}" --warmup-epochs 0 --seed "$seed" "${extra[@]}")
suffix=""
[[ $seed == 0 ]] || suffix="_s$seed"
exports=()

quoted() { python -c 'import shlex, sys; print(shlex.join(sys.argv[1:]))' "$@"; }

above() {  # RUN_DIR MIN WHAT: true when the run's best validation top-1 is above MIN; else say what stops
  local best
  best=$(python -c 'import sys; from mdsnn_zoo.checkpoint import read_checkpoint
print(read_checkpoint(sys.argv[1])[1]["info"]["best_val_top1"])' "$1/best.safetensors")
  python -c 'import sys; sys.exit(float(sys.argv[1]) <= float(sys.argv[2]))' "$best" "$2" && return 0
  echo "$(basename "$1"): best validation $best is not above $2; $3"
  return 1
}

run() {  # VARIANT RUN_DIR COMMAND...: train (or resume) into RUN_DIR; queue its export as entry base_VARIANT
  local variant=$1 dir=$2; shift 2
  "$@" --out-dir "$dir"
  exports+=("${base}_$variant" "$dir" "$(quoted "$@" --out-dir "$dir")")
}

teacher_cmd=(mdsnn-zoo train "${common[@]}" --epochs "$teacher_epochs")
prelude=""  # the commands an entry's recipe needs before its own
if [[ -n ${TWIN_EPOCHS:-} ]]; then
  twin_dir="$runs/$arch.${tag}_t1_relu"
  twin_cmd=(mdsnn-zoo train --dataset "$dataset" --time-steps 1 "${shared[@]}" --activation relu
            --epochs "$TWIN_EPOCHS" --lr 0.1 --out-dir "$twin_dir")
  "${twin_cmd[@]}"
  [[ -z ${MIN_TWIN_VAL:-} ]] || above "$twin_dir" "$MIN_TWIN_VAL" "no SNN teacher (MIN_TWIN_VAL)" || exit 0
  prelude="$(quoted "${twin_cmd[@]}") && "
  teacher_cmd+=(--init "$twin_dir/best.safetensors" --lr "${TEACHER_LR:-0.02}" --warmup-epochs 0)
  [[ -z ${TWIN_KD:-} ]] || teacher_cmd+=(--teacher "$twin_dir/best.safetensors")
  teacher_cmd+=("${teacher_extra[@]}")
else
  teacher_cmd+=(--lr 0.1 "${teacher_extra[@]}")
fi
if [[ $variants == *" fp "* && $seed == 0 ]]; then
  run fp "$runs/$teacher_run" "${teacher_cmd[@]}"
  exports[${#exports[@]} - 1]="$prelude${exports[${#exports[@]} - 1]}"
elif [[ $seed == 0 ]]; then
  "${teacher_cmd[@]}" --out-dir "$runs/$teacher_run"
elif [[ ! -f $teacher ]]; then  # a repeat's students learn from the family's finished teacher, never a new one
  echo "SEED=$seed is a repeat of a trained family and needs its teacher, $teacher; rebuild a shipped one with" \
       "python recipes/carry.py from-zoo ${base}_fp"
  exit 1
fi
[[ -z ${MIN_TEACHER_VAL:-} ]] || above "$runs/$teacher_run" "$MIN_TEACHER_VAL" "no students (MIN_TEACHER_VAL)" || exit 0
for v in w2u2_qat w2u2_md w4u4_md; do
  [[ $variants == *" $v "* ]] || continue
  case $v in
    w2u2_qat) cmd=(mdsnn-zoo train --init "$teacher" --w-bits 2 --u-bits 2) ;;
    w2u2_md) cmd=(mdsnn-zoo distill --teacher "$teacher" --w-bits 2 --u-bits 2) ;;
    w4u4_md) cmd=(mdsnn-zoo distill --teacher "$teacher" --w-bits 4 --u-bits 4) ;;
  esac
  run "$v" "$runs/${base}_$v${RUN_SUFFIX:-}$suffix" "${cmd[@]}" "${common[@]}" "${student[@]}"
done
repeat=()
[[ $seed == 0 ]] || repeat=(--repeat)  # another seed: its test top-1 goes into the shipped entry's repeats
for ((i = 0; i < ${#exports[@]}; i += 3)); do  # teacher first: a student's membrane MSE is to the zoo teacher
  name=${exports[i]} dir=${exports[i+1]} recipe=${exports[i+2]}
  sha=$(sha256sum "$dir/best.safetensors" | cut -d' ' -f1)
  if [[ -f $dir/exported && $(cat "$dir/exported") == "$sha" ]]; then continue; fi
  python recipes/export_zoo.py "$name" "$dir/best.safetensors" --recipe "$recipe" "${repeat[@]}"
  echo "$sha" > "$dir/exported"
done
[[ $seed == 0 && $variants == " fp w2u2_qat w2u2_md w4u4_md " ]] || exit 0  # a part would drop runs from it
# The family's validation curves (docs/), every run it trained (the twin too, when there is one)
curves=(${twin_dir:+"$twin_dir"})
for ((i = 0; i < ${#exports[@]}; i += 3)); do curves+=("${exports[i+1]}"); done
mdsnn-zoo plot curves "${curves[@]}" --title "$base: validation top-1 per epoch" --out "docs/curves_$base.png"
