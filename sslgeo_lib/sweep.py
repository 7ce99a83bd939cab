"""A preset's trained sweep: training it, and describing its runs (tables and training curves)."""
from __future__ import annotations

import pandas as pd

from sslgeo_lib.config import Preset
from sslgeo_lib.data import class_balanced_subset, load_dataset
from sslgeo_lib.embed import encode, eval_indices
from sslgeo_lib.probes import linear_probe
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


def untrained_baseline(preset: Preset) -> pd.DataFrame:
    """Randomly initialised models, one per seed of the preset: the training monitor's kNN accuracy and the
    linear-probe accuracy of h (the C1 protocol: the training subset's features fit it, the test subset
    scores it). The floor that a trained encoder must beat. Columns: seed, knn, linear."""
    device = default_device()
    data = load_dataset(preset.base.dataset)
    test = eval_indices(data.y_test, preset.n_test)
    rows = []
    for seed in preset.seeds:
        cfg = preset.base.replace(seed=seed)
        model = new_model(cfg).to(device)
        train = class_balanced_subset(data.y_train, cfg.n_train, cfg.subset_seed)
        h_train = encode(model.encoder, data.x_train[train], device)
        h_test = encode(model.encoder, data.x_test[test], device)
        rows.append({"seed": seed, "knn": monitor_accuracy(model, cfg, device),
                     "linear": linear_probe(h_train, data.y_train[train], h_test, data.y_test[test])["accuracy"]})
    return pd.DataFrame(rows)
