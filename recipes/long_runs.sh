#!/usr/bin/env bash
# The zoo's long training runs, in order, one heavy job at a time. Each session starts it once, in
# the background, and it carries on where the last session stopped:
#   mkdir -p runs && nohup recipes/long_runs.sh >> runs/long_runs.log 2>&1 &
# Every step resumes from its last checkpoint (written every 200 steps and at each epoch) and a
# finished step returns at once; a second copy started while one runs exits at once.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p runs
exec 9> runs/long_runs.lock
flock -n 9 || { echo "recipes/long_runs.sh is already running"; exit 0; }
echo "== $(date -Is) long runs start"
recipes/fmnist_zoo.sh vgg9 '{"width":0.5}' 40 10
SEED=1 VARIANTS="w2u2_qat w2u2_md" recipes/fmnist_zoo.sh vgg9 '{"width":0.5}' 40 10
STUDENT_ARGS="--no-learn-step --surrogate-shift 0.25" recipes/fmnist_zoo.sh resnet20 '{}' 40 10
echo "== $(date -Is) long runs done"
