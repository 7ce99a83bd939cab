#!/usr/bin/env bash
# The GPU check: on one CUDA GPU, in a few minutes, run
#   1. the tests that exercise the training path, with CUDA as the default device;
#   2. benchmarks/train_speed.py --preset gpu (ours vs the per-image torchvision reference);
#   3. one short gpu-preset training run (ResNet-18, the full training set, a few epochs), reporting img/s.
# Usage: bash benchmarks/gpu_check.sh [OUTDIR]      (SSLGEO_DATA must point at CIFAR-10)
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-gpu_check_out}}"
mkdir -p "$out"
export PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export SSLGEO_CACHE="${SSLGEO_CACHE:-/tmp/sslgeo-cache}" SSLGEO_RUNS="${SSLGEO_RUNS:-/tmp/sslgeo-runs}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cuda', torch.cuda.is_available())"
echo "== 1. tests with CUDA as the default device"
python3 -m pytest -q -p no:cacheprovider tests/test_device.py tests/test_augment.py tests/test_losses.py \
  tests/test_models.py tests/test_train.py tests/test_embed.py 2>&1 | tee "$out/tests.txt" | tail -n 25
echo "== 2. training throughput, gpu preset"
python3 benchmarks/train_speed.py --preset gpu --steps 30 2>&1 | tee "$out/train_speed.txt"
echo "== 3. one short gpu-preset run"
python3 - <<'PY' 2>&1 | tee "$out/short_run.txt"
import tempfile, time, torch
from sslgeo_lib.presets import make_preset
from sslgeo_lib.monitor import monitor_for
from sslgeo_lib.training.loop import train
cfg = make_preset("gpu").base.replace(epochs=3, strength=0.5, monitor_every=1)
t0 = time.perf_counter()
r = train(cfg, tempfile.mkdtemp(), progress=False, monitor=monitor_for(cfg))
m = r.metrics
print(f"{torch.cuda.get_device_name()}: ResNet-18, {cfg.epochs} epochs of 50,000 images, batch {cfg.batch_size}, "
      f"{'bf16' if r.dtype else 'fp32'}, channels_last {r.channels_last}")
print(f"training {m['images_per_s']:,.0f} img/s; epoch seconds {[round(s, 1) for s in m['epoch_seconds']]}; "
      f"loss {[round(x, 3) for x in m['loss']]}; kNN {m['knn']}; wall {time.perf_counter() - t0:.0f} s")
PY
