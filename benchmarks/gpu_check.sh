#!/usr/bin/env bash
# The GPU check: one command, on one CUDA GPU, in a few minutes (at most 8).
#
#   bash benchmarks/gpu_check.sh [--dry] [--book [--config FILE]] [--wheels DIR] [OUTDIR]   (SSLGEO_DATA: CIFAR-10)
#
# Without --book it runs, and prints each figure with the GPU's name:
#   1. the tests of the training path with CUDA as the default device;
#   2. benchmarks/train_speed.py --preset gpu (ours vs the per-image torchvision reference);
#   3. one short gpu-preset run (ResNet-18, all 50,000 training images, 3 epochs, s = 0 and 1) through the C2
#      notebook (papermill), with its training throughput and C2's statistic;
#   4. benchmarks/parallel_speed.py: the local executor's runs per minute on this machine's cores (CUDA hidden).
# --book: instead, the GPU edition: trains the gpu-lite preset (ResNet-18, 3 strengths x 3 seeds), writes
#   OUTDIR/verdicts.json (every core claim's verdict, with the GPU, package versions and commit), then builds the
#   core chapters into OUTDIR/book/_build/html, and times each part. --config FILE: the book's configuration
#   instead of _config.yml (e.g. one whose execute.cache is a jupyter-cache that already holds the notebooks).
# --dry: on a CPU, every step at smoke size (the tests run it, so the script cannot rot).
# --wheels DIR: first install the packages this Python lacks, offline, from the wheels in DIR (a machine without
#   internet; torch and torchvision are never replaced: the machine's own CUDA build is kept).
# Every part's output goes to OUTDIR (default gpu_check_out); the exit status is non-zero if any part failed.
set -uo pipefail
die() { echo "gpu_check: $1" >&2; exit 2; }
usage() { die "$1 (accepted: --dry, --book, --config FILE, --wheels DIR, OUTDIR; --help)"; }
dry=0 book=0 wheels="" out="" config=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry) dry=1 ;;
    --book) book=1 ;;
    --wheels) [ $# -ge 2 ] && [ -d "$2" ] || usage "--wheels needs a folder of wheels"; wheels="$(cd "$2" && pwd)"; shift ;;
    --config) [ $# -ge 2 ] && [ -f "$2" ] || usage "--config needs a book configuration file"
              config="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    -*) usage "unknown option $1" ;;
    *) out="$1" ;;
  esac
  shift
done
[ -z "$config" ] || [ $book -eq 1 ] || usage "--config is for --book only"
# relative paths mean the directory the user ran from, as everywhere in sslgeo
out="${out:-${OUT:-gpu_check_out}}"
out="$(mkdir -p "$out" && cd "$out" && pwd)" || die "cannot create the output folder $out"
for v in SSLGEO_DATA SSLGEO_RUNS SSLGEO_CACHE; do
  if [ -n "${!v:-}" ] && [ "${!v#/}" = "${!v}" ]; then export "$v=$PWD/${!v}"; fi
done
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
export PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export SSLGEO_CACHE="${SSLGEO_CACHE:-/tmp/sslgeo-cache}" SSLGEO_RUNS="${SSLGEO_RUNS:-/tmp/sslgeo-runs}"
failed=()
step() { echo; echo "== $*"; }
timed() {  # timed NAME COMMAND...: run it, log to OUTDIR/NAME.txt, record its seconds and failure
  local name="$1" t0=$SECONDS; shift
  "$@" > "$out/$name.txt" 2>&1
  local rc=$?
  echo "$name: $((SECONDS - t0)) s, exit $rc" | tee -a "$out/times.txt"
  [ $rc -eq 0 ] || failed+=("$name")
  return $rc
}

# import name -> requirement name, for what the check needs (torch and torchvision: the machine's own builds);
# Jupyter Book only for the book
modules="torch:torch torchvision:torchvision kornia:kornia sklearn:scikit-learn skdim:scikit-dimension
safetensors:safetensors pandas:pandas seaborn:seaborn tqdm:tqdm papermill:papermill pytest:pytest myst_nb:myst-nb
ipykernel:ipykernel"
[ $book -eq 1 ] && modules="$modules jupyter_book:jupyter-book"
lacking() {  # the requirement names whose module is not installed here (one interpreter, nothing imported)
  # shellcheck disable=SC2086
  "$PY" - $modules <<'PY'
import importlib.util, sys
print(" ".join(p.split(":")[1] for p in sys.argv[1:] if importlib.util.find_spec(p.split(":")[0]) is None))
PY
}
missing=$(lacking)
if [ -n "$missing" ] && [ -n "$wheels" ]; then
  reqs=$(for r in $missing; do grep -E "^$r==" requirements.txt; done | grep -vE '^torch(vision)?==')
  if [ -n "$reqs" ]; then
    echo "installing from $wheels: $reqs"
    # shellcheck disable=SC2086
    "$PY" -m pip install --quiet --no-index --find-links "$wheels" $reqs || die "pip could not install $reqs from $wheels"
  fi
  missing=$(lacking)
fi
if [ -n "$missing" ]; then
  echo "gpu_check: these packages do not import here: $missing. Install them from requirements.txt, or pass" \
       "--wheels DIR with their wheels (pip download -r requirements.txt -d DIR, on a machine with internet)." >&2
  exit 2
fi
if [ $dry -eq 1 ]; then
  preset=smoke; device="none: a dry run on the CPU"
  short=(-p preset smoke)  # the smoke preset's own C2 sweep: s = 0 and 1, one seed (runs a smoke book has already)
else
  preset=$([ $book -eq 1 ] && echo gpu-lite || echo gpu)
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || {
    die "torch sees no CUDA GPU here; use --dry to check the script on a CPU"; }
  device=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -n 1)
  [ -n "$device" ] || device=$("$PY" -c "import torch; print(torch.cuda.get_device_name())")
  short=(-p preset gpu -p epochs 3 -p strengths "[0.0, 1.0]" -p seeds "[0]")
fi
export SSLGEO_PRESET=$preset
{ echo "device: $device"; "$PY" -c "import torch, torchvision, platform; print('python', platform.python_version(), \
'torch', torch.__version__, 'torchvision', torchvision.__version__, 'cuda', torch.cuda.is_available())"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git status --porcelain 2>/dev/null | grep -q . && echo ' (uncommitted changes)')"
} | tee "$out/gpu.txt"
: > "$out/times.txt"

if [ $book -eq 0 ]; then
  step "1. tests of the training path, CUDA as the default device"
  tests=(tests/test_device.py tests/test_augment.py tests/test_losses.py tests/test_models.py tests/test_train.py
         tests/test_embed.py)
  collect=$([ $dry -eq 1 ] && echo --collect-only)  # dry: the CPU has no CUDA to test
  # shellcheck disable=SC2086
  timed tests "$PY" -m pytest -q -p no:cacheprovider $collect "${tests[@]}"
  tail -n 3 "$out/tests.txt"

  step "2. training throughput, $preset preset: ours vs the reference pipeline"
  timed train_speed "$PY" benchmarks/train_speed.py --preset "$preset" --steps "$([ $dry -eq 1 ] && echo 2 || echo 30)"
  cat "$out/train_speed.txt"

  step "3. one short $preset-preset sweep (s = 0 and 1, one seed) through the C2 notebook"
  timed c2_notebook "$PY" -m papermill book/c2_invariance.ipynb "$out/c2_invariance.ipynb" --cwd book "${short[@]}"
  tail -n 5 "$out/c2_notebook.txt"
  cat > "$out/short_run.py" <<'PY'
import sys
from sslgeo_lib.presets import make_preset
from sslgeo_lib.report import read_glue
from sslgeo_lib.store import load_run

nb, device, args = sys.argv[1], sys.argv[2], sys.argv[3:]
params = dict(zip(args[1::3], args[2::3]))
p = make_preset(**params)
for cfg in p.configs():
    run = load_run(cfg)
    m = run.metrics
    print(f"{device}: {cfg.encoder}, {cfg.n_train or 'all'} training images, {cfg.epochs} epoch(s), s={cfg.strength:g}: "
          f"{m['images_per_s']:,.0f} images/s, epoch seconds {[round(s, 1) for s in m['epoch_seconds']]}, "
          f"loss {[round(x, 3) for x in m['loss']]}, kNN {[round(x, 3) for x in m['knn']]}")
for key, value in read_glue(nb).items():
    if key.startswith("c2") and key.endswith(("_statistic", "_ci", "_verdict")):
        print(f"{device}: {key} = {value}")
PY
  timed short_run "$PY" "$out/short_run.py" "$out/c2_invariance.ipynb" "$device" "${short[@]}"
  cat "$out/short_run.txt"

  step "4. the local executor on this machine's cores (CPU, CUDA hidden): runs side by side against one at a time"
  # shellcheck disable=SC2046
  timed parallel "$PY" benchmarks/parallel_speed.py $([ $dry -eq 1 ] && echo --jobs 1 --runs 1 --alone 1 --n-train 256)
  cat "$out/parallel.txt"
else
  step "the GPU edition: the $preset preset's sweep, the core chapters, the verdicts"
  [ -f _vendor/mathjax/tex-svg-full.js ] ||
    die "_vendor/mathjax is missing; run 'make static' on a machine with npm and bring _vendor along"
  timed train "$PY" -m sslgeo_lib.cli train --preset "$preset" --main-only --quiet
  tail -n 8 "$out/train.txt"
  timed verdicts "$PY" -m sslgeo_lib.cli verdicts --preset "$preset" --main-only --out "$out/verdicts.json"
  cat "$out/verdicts.txt"
  rm -rf "$out/book"
  timed build "$PY" -c "import sys; from jupyter_book.cli.main import main; sys.exit(main())" \
    build . -W -n --keep-going --toc _toc_core.yml --path-output "$out/book" ${config:+--config "$config"}
  tail -n 5 "$out/build.txt"
  echo "the book: $out/book/_build/html/index.html"
fi
echo
echo "== times (device: $device)"
cat "$out/times.txt"
if [ ${#failed[@]} -gt 0 ]; then
  echo "gpu_check: FAILED: ${failed[*]} (see $out/<part>.txt)" >&2
  exit 1
fi
