#!/usr/bin/env bash
# The zoo's twelve students made hardware-exact (issue 40, docs/integer.md): each shipped student is
# fine-tuned on the integer grid (--scale-bits 7: power-of-two steps, 8-bit multipliers and shifts) for one
# epoch at a low rate, MD from its zoo teacher (naive QAT entries: cross-entropy alone), with its own
# recipe's flags, into RUNS/int/NAME; the student rounded onto the grid is validated before the first step
# too, so best.safetensors is whichever of the start and the end validates higher. Every run resumes and a
# finished one returns at once, so the script can be rerun after an interruption (it first restores what
# `python recipes/carry.py save int/NAME` carried from an earlier machine); a second copy started while one
# runs exits at once. It trains only: publish a run with `recipes/integer_zoo.sh --print-export NAME` (the
# export command, its recipe included).
#   nohup recipes/integer_zoo.sh > /dev/null 2>&1 &       # progress: RUNS/int/integer_zoo.log
#   recipes/integer_zoo.sh --print-export small_cnn.fmnist_t4_w2u2_md
# Environment: RUNS (default runs), NAMES (default: all twelve, in the order below).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-runs}
names=${NAMES:-"small_cnn.fmnist_t4_w2u2_md small_cnn.fmnist_t4_w4u4_md small_cnn.fmnist_t4_w2u2_qat
vgg9.fmnist_t4_w2u2_md vgg9.fmnist_t4_w4u4_md vgg9.fmnist_t4_w2u2_qat
vgg9.nfmnist_t10_w2u2_md vgg9.nfmnist_t10_w4u4_md vgg9.nfmnist_t10_w2u2_qat
ms_resnet18.fmnist_t4_w2u2_md ms_resnet18.fmnist_t4_w4u4_md ms_resnet18.fmnist_t4_w2u2_qat"}

command_for() {  # NAME: the fine-tune that makes NAME hardware-exact, as one line
  local name=$1 flags="--scale-bits 7 --epochs 1 --lr 0.002 --augment crop,flip,erase --batch-size 128 --ema-decay 0 --validate-start"
  case $name in *nfmnist*) flags+=" --dataset n-fashion-mnist" ;; esac
  case $name in small_cnn.*|ms_resnet18.*) flags+=" --no-val-amp" ;; esac  # as their recipes validated
  case $name in ms_resnet18.*) flags+=" --surrogate-shift 0.25" ;; esac
  case $name in *_qat) flags+=" --no-distill" ;; esac
  echo "mdsnn-zoo finetune $name $flags --checkpoint-every 200 --resume --no-progress --out-dir $runs/int/$name"
}

if [[ ${1:-} == --print-export ]]; then
  name=$2  # the entry keeps the one it was fine-tuned from, its recipe and sha256, as fine_tuned_from
  python -c 'import shlex, sys; print(shlex.join(sys.argv[1:]))' python recipes/export_zoo.py "$name" \
    "$runs/int/$name/best.safetensors" --recipe "$(command_for "$name")"
  exit 0
fi

store=${MDSNN_RUNS:-$HOME/.cache/mdsnn_zoo/runs}  # runs/ links to the run store, as in recipes/long_runs.sh
mkdir -p "$store"
[[ $runs != runs || -e runs ]] || ln -s "$store" runs
mkdir -p "$runs/int"
exec >> "$runs/int/integer_zoo.log" 2>&1
exec 9> "$runs/int/integer_zoo.lock"
flock -n 9 || { echo "recipes/integer_zoo.sh is already running"; exit 0; }
echo "== $(date -Is) integer zoo start"
python recipes/carry.py restore  # a run a session carried (python recipes/carry.py save int/NAME)
for name in $names; do
  if [[ $name == *nfmnist* ]] && ! python -c 'from mdsnn_zoo.data import get_dataset; get_dataset("n-fashion-mnist", "test")' 2> /dev/null; then
    mdsnn-zoo data make n-fashion-mnist --workers 2 --no-progress
  fi
  echo "== $(date -Is) $name"
  $(command_for "$name")
done
echo "== $(date -Is) integer zoo done"
