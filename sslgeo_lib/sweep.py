"""A preset's trained sweep: training it, and describing its runs (tables and training curves)."""
from __future__ import annotations

import pandas as pd

from sslgeo_lib.config import Preset
from sslgeo_lib.store import Run, get_or_train
from sslgeo_lib.train import default_device, monitor_accuracy, new_model


def sweep(preset: Preset, progress: bool = True) -> list[Run]:
    """Every run of the preset's sweep (strengths outer, seeds inner), training only those not yet stored."""
    return [get_or_train(cfg, progress=progress) for cfg in preset.configs()]


def run_table(runs: list[Run]) -> pd.DataFrame:
    """One row per run: sweep point, final loss and kNN accuracy, throughput, wall time, where it ran."""
    rows = []
    for r in runs:
        m, p = r.metrics, r.provenance
        rows.append({"run": r.id, "strength": r.config.strength, "seed": r.config.seed,
                     "epochs": len(m["epoch"]), "final loss": m["loss"][-1], "kNN acc (h)": m["knn_acc"][-1],
                     "images/s": m["images_per_s"], "train min": m["train_seconds"] / 60,
                     "precision": p["precision"], "device": p["device_name"]})
    return pd.DataFrame(rows)


def training_curves(runs: list[Run]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(loss per epoch, kNN accuracy per monitored epoch), tidy, with strength and seed."""
    loss, knn = [], []
    for r in runs:
        s, k, m = r.config.strength, r.config.seed, r.metrics
        loss += [{"strength": s, "seed": k, "epoch": e, "loss": v} for e, v in zip(m["epoch"], m["loss"])]
        knn += [{"strength": s, "seed": k, "epoch": e, "knn_acc": v} for e, v in zip(m["knn_epoch"], m["knn_acc"])]
    return pd.DataFrame(loss), pd.DataFrame(knn)


def untrained_accuracy(preset: Preset) -> list[float]:
    """The training monitor's kNN accuracy for randomly initialised models, one per seed of the preset."""
    device = default_device()
    out = []
    for seed in preset.seeds:
        cfg = preset.base.replace(seed=seed)
        out.append(monitor_accuracy(new_model(cfg).to(device), cfg, device))
    return out
