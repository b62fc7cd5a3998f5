#!/usr/bin/env bash
# One GPU session's checks, within about 10 minutes on an H100/H200: first the kernels compiled ahead
# of time with the card's own Triton (a compile error shows in the first minute, not in the tests),
# then the GPU tests (Triton and CuPy kernels against the torch reference on the device) and the
# kernel benchmarks. Results go to $OUT (the device tool's folder) or benchmarks/results/.
# Run `mdsnn-zoo bench aot` here first: it needs no GPU.
#
# Here, first:  bash ../shared/gpu/fetch-wheels.sh   (SpikingJelly's wheels, into .whl/)
# Device call:  carry [".whl"], command "bash benchmarks/gpu_check.sh", timeout_s about 600.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-benchmarks/results}"
mkdir -p "$out"
log="$out/gpu_check.log"
exec > >(tee "$log") 2>&1

if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
# The package without installing it: kernels/ becomes mdsnn_zoo/kernels as pyproject.toml maps it.
rm -rf /tmp/mdsnn_src && mkdir -p /tmp/mdsnn_src && cp -r mdsnn_zoo /tmp/mdsnn_src/ && cp -r kernels /tmp/mdsnn_src/mdsnn_zoo/kernels
export PYTHONPATH="/tmp/mdsnn_src:/tmp/site:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
card=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr ' ' '_')
echo "== $card, $(date -u +%FT%TZ)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv

echo "== kernels compiled ahead of time (registers, spills)"
timeout 150 python3 -m mdsnn_zoo bench aot --workers 8 --out "$out/kernel_resources_${card}.md" > "$out/aot.log"
echo "exit $?"; head -3 "$out/aot.log"

echo "== GPU tests"
timeout 240 python3 -m pytest -q -x -p no:cacheprovider tests/test_lif_kernels.py tests/test_neuron.py tests/test_distill.py 2>&1 | tail -25

echo "== LIF benchmark"
timeout 300 python3 -m mdsnn_zoo bench lif --device cuda --budget 0.2 --out "$out/lif_${card}.md" | tail -60

echo "== membrane MSE and training throughput"
timeout 90 python3 -m mdsnn_zoo bench mse --device cuda --budget 0.2 --out "$out/mse_${card}.md" | tail -20
timeout 150 python3 -m mdsnn_zoo bench train --device cuda --batch-size 128 --budget 2 \
  --models small_cnn.fmnist_t4_fp,vgg9.fmnist_t4_fp,ms_resnet18.fmnist_t4_fp,vgg16.cifar10_t4_fp,resnet19.cifar10_t4_fp,ms_resnet18.cifar10_t4_fp \
  --out "$out/train_${card}.md" | tail -12
echo "== done $(date -u +%FT%TZ)"
