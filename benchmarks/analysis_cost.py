"""What the analysis of one trained run costs, against what its training cost.

    python benchmarks/analysis_cost.py                 # a cpu-preset run (trains it if the store lacks it)

Each claim's per-run computation (feature extraction, probes, Jacobians, kNN tangent planes, retention
regressions) is timed from a cold cache, on a copy of the run's store entry, and compared with the run's
training time. Target: C1-C5's analysis of the trained run at most 0.25 x its training time. The B4 line is the
extra cost of reading the run at its intermediate snapshots (the same features and statistics at each); it is
printed per snapshot and added into the last line.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from sslgeo_lib import measures
from sslgeo_lib.embed import clean_features, view_features
from sslgeo_lib.presets import make_preset
from sslgeo_lib.runs import load_or_train
from sslgeo_lib.training.loop import train, training_images


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--strength", type=float, default=1.0)
    args = ap.parse_args()
    p = make_preset(args.preset)
    ev = p.eval
    run = load_or_train(p.base.replace(strength=args.strength, seed=0))
    with tempfile.TemporaryDirectory() as tmp:
        # the baseline, measured in this process: two epochs of the same config (the second timed), scaled to
        # the run's epochs; the stored run's own time may come from another machine or a busy one
        probe = train(run.config, Path(tmp) / "baseline", progress=False,
                      max_epochs=2)
        epoch_s = probe.metrics["epoch_seconds"][-1]
        train_s = epoch_s * run.config.epochs
        images_per_s = len(training_images(run.config)) // run.config.batch_size * run.config.batch_size / epoch_s
        cold = replace(run, path=Path(tmp) / run.id)
        shutil.copytree(run.path, cold.path, ignore=shutil.ignore_patterns("cache"))
        steps = {
            "clean features, training subset": lambda: clean_features(cold, "train", 0),
            "clean features, test subset": lambda: clean_features(cold, "test", ev.n_test),
            "augmented views (s_eval = s_train and fixed)": lambda: [
                view_features(cold, ev.n_test, s, ev.n_views) for s in {run.config.strength, ev.eval_strength}],
            "C1 probes (linear + kNN, every layer)": lambda: measures.transfer_table([cold], ev),
            "C2 invariance": lambda: measures.invariance_table([cold], ev),
            "C3 dimension (incl. Jacobians, ID)": lambda: measures.dimension_table([cold], ev),
            "C4 tangent planes, alignment, rho": lambda: measures.tangent_table([cold], ev),
            "C5 parameter retention": lambda: measures.retention_table([cold], ev),
            "B4 C1-C3 at the 25% and 50% snapshots": lambda: measures.progress_table([cold], ev),
        }
        print(f"run {run.id} (s = {run.config.strength:g}, {run.config.encoder}, {run.config.n_train} images, "
              f"{run.config.epochs} epochs): training takes {train_s:.1f} s here ({images_per_s:,.0f} images/s, "
              f"one epoch timed now; the stored run took {run.metrics['train_seconds']:.1f} s)")
        times = {}
        for name, fn in steps.items():
            t0 = time.perf_counter()
            fn()
            times[name] = time.perf_counter() - t0
            print(f"  {name:<45} {times[name]:7.1f} s   {times[name] / train_s:5.2f} x training")
        snapshots = sum(dt for name, dt in times.items() if name.startswith("B4"))
        claims = sum(times.values()) - snapshots
        n_snap = len(run.epochs) - 1
        print(f"  {'C1-C5: the analysis of the trained run':<45} {claims:7.1f} s   {claims / train_s:5.2f} x training "
              f"(target <= 0.25: {'met' if claims / train_s <= 0.25 else 'NOT met'})")
        if n_snap:
            print(f"  {'B4, per snapshot analysed':<45} {snapshots / n_snap:7.1f} s   "
                  f"{snapshots / n_snap / train_s:5.2f} x training")
        total = claims + snapshots
        print(f"  {'all of it, the run and its snapshots':<45} {total:7.1f} s   {total / train_s:5.2f} x training")

if __name__ == "__main__":
    main()
