"""The local executor on many cores: runs per minute with `--jobs N` against one run at a time, in the same run.

    python benchmarks/parallel_speed.py                 # N = what the executor picks here (cores // 2)
    python benchmarks/parallel_speed.py --jobs 8 --n-train 5000 --epochs 1

It trains short runs of the cpu preset's encoder on the CPU (CUDA is hidden: this measures the CPU executor, also
on a machine with a GPU) into two fresh temporary stores: first `--alone` runs one after another (`--jobs 1`),
then `--runs` runs (default N) with N at once, the first `--alone` of them the same configs. It prints each
phase's wall time, the runs per minute of each, their ratio (the speed-up) and the parallel efficiency (speed-up
/ N), and checks that the runs both phases trained have bit-identical weights. Every run's wall time includes its
worker's start-up (a fresh Python importing torch), as it does in a real sweep; short runs therefore understate
the speed-up of the cpu preset's minutes-long runs.
"""
from __future__ import annotations

import os

os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch: the CPU executor, also where a GPU is present

import argparse  # noqa: E402 - after hiding CUDA
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from safetensors.torch import load_file  # noqa: E402

from sslgeo_lib.executor import available_cores, resolve_jobs, train_locally  # noqa: E402
from sslgeo_lib.presets import PRESETS  # noqa: E402
from sslgeo_lib.training.loop import TRAINING_THREADS  # noqa: E402


def positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a whole number >= 1")
    return n


def phase(configs, jobs: int, store: Path) -> tuple[float, list]:
    """Train `configs` into the empty store `store`, `jobs` at once: (wall seconds, the runs)."""
    os.environ["SSLGEO_RUNS"] = str(store)
    t0 = time.perf_counter()
    runs = list(train_locally(configs, progress=False, jobs=jobs).values())
    return time.perf_counter() - t0, runs


def same_weights(a, b) -> bool:
    wa, wb = load_file(a.path / "weights.safetensors"), load_file(b.path / "weights.safetensors")
    return wa.keys() == wb.keys() and all(wa[k].equal(wb[k]) for k in wa)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=positive, default=None, help="runs at once (default: the executor's choice here)")
    ap.add_argument("--runs", type=positive, default=None, help="runs of the parallel phase (default: --jobs)")
    ap.add_argument("--alone", type=positive, default=2, help="runs of the one-at-a-time phase (default 2)")
    ap.add_argument("--n-train", type=positive, default=5000, help="training images per run (default 5,000)")
    ap.add_argument("--epochs", type=positive, default=1, help="epochs per run (default 1)")
    args = ap.parse_args(argv)
    jobs = resolve_jobs(args.jobs)
    n_runs = args.runs or jobs
    if args.alone > n_runs:
        ap.error(f"--alone {args.alone} is more than the parallel phase's {n_runs} runs; accepted: at most --runs")
    base = PRESETS["cpu"].base.replace(n_train=args.n_train, epochs=args.epochs, monitor_every=0, strength=0.5)
    configs = [base.replace(seed=100 + i) for i in range(n_runs)]
    print(f"{available_cores()} cores, {TRAINING_THREADS} training threads a run; {base.encoder} "
          f"(width {base.encoder_width}), {args.n_train:,} images x {args.epochs} epoch(s), batch {base.batch_size}")
    if jobs == 1:
        print("parallel_speed: the executor trains one run at a time here (pass --jobs N to compare N at once)")
    with tempfile.TemporaryDirectory(prefix="sslgeo-parallel-") as tmp:
        t1, alone = phase(configs[:args.alone], 1, Path(tmp) / "alone")
        tn, together = phase(configs, jobs, Path(tmp) / "together")
        identical = all(same_weights(a, b) for a, b in zip(alone, together))
        rate1, rate_n = args.alone / t1 * 60, n_runs / tn * 60
        ips = [r.metrics["images_per_s"] for r in together]
        print(f"one at a time: {args.alone} runs in {t1:.1f} s = {rate1:.2f} runs/min "
              f"({sum(r.metrics['images_per_s'] for r in alone) / len(alone):,.0f} images/s a run)")
        print(f"{jobs} at once:    {n_runs} runs in {tn:.1f} s = {rate_n:.2f} runs/min "
              f"({min(ips):,.0f}-{max(ips):,.0f} images/s a run)")
        print(f"speed-up {rate_n / rate1:.2f}x with {jobs} jobs (efficiency {rate_n / rate1 / jobs:.0%}); "
              f"weights of the {len(alone)} runs both phases trained: {'identical' if identical else 'DIFFER'}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
