"""A preset's trained sweep: "load or train" for each run, and descriptions of the runs (tables, curves)."""
from __future__ import annotations

import os
import shutil
import warnings
from dataclasses import dataclass

import pandas as pd

from sslgeo_lib.config import RunConfig
from sslgeo_lib.presets import Preset
from sslgeo_lib.fileio import file_lock
from sslgeo_lib.store import (Run, StoreError, check_entry, check_store, entry_path, find_entry, is_run, lock_path,
                              read_entry, start_entry, write_entry)


@dataclass(frozen=True)
class Outcome:
    """What `train_or_load` did for one run: `action` is "stored" (it was complete), "trained", "resumed" (from
    the checkpoint of an interrupted attempt, after `from_epoch` epochs) or "loaded" (another process trained it
    while this one waited for its lock)."""

    run: Run
    action: str
    from_epoch: int = 0


def get_or_train(cfg: RunConfig, progress: bool = True, device=None) -> Run:
    """The stored run for `cfg`; trains it (resuming from a checkpoint if one exists) when absent."""
    return train_or_load(cfg, progress, device).run


def train_or_load(cfg: RunConfig, progress: bool = True, device=None) -> Outcome:
    """The stored run for `cfg`, and how it came to be (see `Outcome`); trains it when absent.

    A complete entry is read without any lock (a read-only store works). Otherwise the run's lock is taken
    (waiting, with a message, while another process trains it), the entry is checked again (that process may
    have finished it), and the store is checked for room before any training. A corrupt entry is reported
    with a warning, removed and retrained. A second call never retrains.
    """
    stored = find_entry(cfg, device)
    if stored is not None:
        return Outcome(read_entry(stored, cfg), "stored")
    path = entry_path(cfg, device)
    check_store(cfg)
    check_fits(cfg)
    waiting = lambda: warnings.warn(f"run {path.name} is being trained by another process; waiting for it",  # noqa: E731
                                    stacklevel=4)
    with file_lock(lock_path(path.name), on_wait=waiting):
        return _train_entry(path, cfg, progress, device)


def _train_entry(path, cfg: RunConfig, progress: bool, device) -> Outcome:
    """Under the run's lock: load it if another process finished it meanwhile, else (re)train and write it."""
    from sslgeo_lib.monitor import monitor_for
    from sslgeo_lib.provenance import provenance
    from sslgeo_lib.training.loop import train

    problem = check_entry(path, cfg)
    if problem is None:
        return Outcome(read_entry(path, cfg), "loaded")
    if problem.startswith("unreadable"):
        raise StoreError(f"run {path.name} is {problem}: fix its permissions or remove it")
    from_epoch = 0
    if path.is_dir() and not path.is_symlink() and (path / "checkpoint.pt").is_file():
        warnings.warn(f"run {path.name} is {problem}; resuming from its last checkpoint", stacklevel=3)
        from_epoch = checkpoint_epoch(path / "checkpoint.pt", cfg)
    elif path.exists() or path.is_symlink():
        warnings.warn(f"run {path.name} is {problem}; retraining it", stacklevel=3)
        if path.is_dir() and not path.is_symlink() and is_run(path):
            shutil.rmtree(path)
    start_entry(path, cfg)
    try:
        result = train(cfg, path, progress=progress, device=device, monitor=monitor_for(cfg))
    except FloatingPointError as exc:  # never stored: a NaN run would pass as complete and be analysed
        shutil.rmtree(path)
        raise FloatingPointError(f"run {path.name} diverged: {exc} (lr={cfg.lr:g}, method {cfg.method}); nothing "
                                 f"was stored. Train it with a smaller learning rate (RunConfig.lr; BeyondGrid.lr "
                                 f"per objective)") from None
    run = write_entry(path, cfg, result.model, result.metrics,
                      provenance(result.device, result.dtype, result.channels_last, result.threads, cfg.dataset))
    return Outcome(run, "resumed" if from_epoch else "trained", from_epoch)


def checkpoint_epoch(path, cfg: RunConfig) -> int:
    """The epochs a checkpoint has completed; 0 when it is unreadable or lacks what the training loop resumes
    from (the model, optimiser, metrics and, for BYOL, the target network): training then starts afresh."""
    import torch

    needed = ("model", "opt", "epoch", "metrics") + (("target",) if cfg.method == "byol" else ())
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - an unreadable checkpoint is retrained, exactly as the training loop does
        return 0
    return int(state["epoch"]) if all(k in state for k in needed) else 0


def check_fits(cfg: RunConfig) -> None:
    """`cfg` can train on its dataset, or a ValueError that names the number that does not fit and what is
    accepted (before anything is written): no more training images than the dataset has (never a silent cap),
    at least two batches of them, and at least 2 classes (every claim compares class information)."""
    from sslgeo_lib.data import load_dataset

    data = load_dataset(cfg.dataset)
    n = len(data.y_train)
    if cfg.n_train > n:
        raise ValueError(f"n_train={cfg.n_train:,} is larger than the {n:,} training images of {cfg.dataset} "
                         f"(use n_train <= {n:,}, or 0 for all of them)")
    used = cfg.n_train or n
    if used < 2 * cfg.batch_size:
        raise ValueError(f"the run trains on {used:,} images of {cfg.dataset}, fewer than two batches of "
                         f"batch_size={cfg.batch_size} ({2 * cfg.batch_size:,}): use batch_size <= {used // 2:,} "
                         f"or a dataset with more images")
    classes = len(set(data.y_train.tolist()))
    if classes < 2:
        raise ValueError(f"{cfg.dataset} has {classes} class in its training split; the claims measure class "
                         f"information (probes, kNN), which needs at least 2 classes")


GPU_PRESETS = ("gpu-lite", "gpu")  # ResNet-18 on the whole training set: days on a CPU


def check_preset(preset: Preset, allow_cpu: bool | None = None) -> None:
    """Before a sweep trains anything: the preset's evaluation sizes fit its data (n_test, n_anchor, n_id,
    n_probe_train), and a GPU preset has a GPU unless `allow_cpu` (None: $SSLGEO_ALLOW_CPU == "1") says to train
    it on the CPU anyway (`sweep` skips the device check when Ray's workers train). A ValueError names the number that does not fit and what is accepted."""
    from sslgeo_lib.data import load_dataset
    from sslgeo_lib.training.loop import default_device

    data = load_dataset(preset.base.dataset)
    allow = allow_cpu if allow_cpu is not None else os.environ.get("SSLGEO_ALLOW_CPU") == "1"
    if preset.name in GPU_PRESETS and default_device().type == "cpu" and not allow:
        raise ValueError(f"preset {preset.name} trains ResNet-18 on all {len(data.y_train):,} training images and "
                         f"needs a GPU; this machine has none (a run would take many hours). Use --preset cpu (sized "
                         f"for 2 CPU cores), or gpu-lite / gpu on a machine with a GPU; --allow-cpu "
                         f"(SSLGEO_ALLOW_CPU=1) trains it here anyway")
    ev = preset.eval
    ev.anchor_size(len(data.y_test)), ev.id_size(len(data.y_test))  # n_test, n_anchor, n_id against the test split
    if ev.n_probe_train > len(data.y_train):
        raise ValueError(f"n_probe_train={ev.n_probe_train:,} is larger than the {len(data.y_train):,} training images "
                         f"of {preset.base.dataset} (use n_probe_train <= {len(data.y_train):,}, or 0 for each run's "
                         f"own training subset)")


def sweep(preset: Preset, progress: bool = True, configs: list[RunConfig] | None = None,
          executor: str | None = None, address: str | None = None, allow_cpu: bool | None = None) -> list[Run]:
    """Every run of the preset's sweep (strengths outer, seeds inner; or of `configs`, e.g. the preset's
    `shape_configs()`), training only those not yet stored.
    `executor` ("local" or "ray"; None: $SSLGEO_EXECUTOR, else local) says where missing runs train, and
    `address` which Ray cluster (see `executor.train_on_ray`).
    Before any run trains, everything that can be known is checked: the store (when a run is missing), every
    missing run against its data (`check_fits`), the evaluation sizes and the device (`check_preset`, with
    `allow_cpu`), so impossible work fails now, not after training, and writes nothing."""
    from sslgeo_lib.executor import resolve_executor, train_on_ray

    executor = resolve_executor(executor)
    configs = preset.configs() if configs is None else list(dict.fromkeys(configs))  # each run once
    missing = [c for c in configs if find_entry(c) is None]
    if missing:
        check_store(missing[0])
    # stored runs are read on any machine, and Ray's workers bring their own devices
    check_preset(preset, allow_cpu if missing and executor == "local" else True)
    for cfg in missing:
        check_fits(cfg)
    if executor == "ray" and missing:
        # the workers' entries (on a GPU cluster their numerics, hence their ids, may differ from this machine's)
        trained = {c: read_entry(o.path, c) for c, o in train_on_ray(missing, address, progress).items()}
        return [trained[c] if c in trained else get_or_train(c, progress=progress) for c in configs]
    return [get_or_train(cfg, progress=progress) for cfg in configs]


def run_table(runs: list[Run]) -> pd.DataFrame:
    """One row per run: sweep point, final loss and kNN accuracy, throughput, wall time, where it ran."""
    rows = []
    for r in runs:
        m, p = r.metrics, r.provenance
        rows.append({"run": r.id, "strength": r.config.strength, "seed": r.config.seed,
                     "epochs": len(m["epoch"]), "final loss": m["loss"][-1], "knn": m["knn"][-1],
                     "images/s": m["images_per_s"], "train min": m["train_seconds"] / 60,
                     "precision": p["precision"], "device": p["device_name"]})
    return pd.DataFrame(rows)


def training_curves(runs: list[Run]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(loss per epoch, kNN accuracy per monitored epoch), tidy, with strength and seed."""
    loss, knn = [], []
    for r in runs:
        s, k, m = r.config.strength, r.config.seed, r.metrics
        loss += [{"strength": s, "seed": k, "epoch": e, "loss": v} for e, v in zip(m["epoch"], m["loss"])]
        knn += [{"strength": s, "seed": k, "epoch": e, "knn": v} for e, v in zip(m["knn_epoch"], m["knn"])]
    return pd.DataFrame(loss), pd.DataFrame(knn)


def learning_table(runs: list[Run], device=None) -> pd.DataFrame:
    """Did each run's encoder learn? Per run, on the kNN protocol (`monitor`): the accuracy of its h, the same
    for its untrained encoder (same seed, BatchNorm statistics re-estimated on the bank) and the paired gain;
    cached with the run. Columns: strength, seed, method, augment_family, projector_depth, knn, knn_untrained,
    gain."""
    from sslgeo_lib.monitor import PROTOCOL_BANK, PROTOCOL_QUERIES, knn_of_h, untrained_encoder
    from sslgeo_lib.training.loop import default_device

    device = device or default_device()
    rows = []
    for r in runs:
        def compute(r=r):
            return [{"knn": knn_of_h(r.model(device).encoder, r.config.dataset, device),
                     "knn_untrained": knn_of_h(untrained_encoder(r.config, device), r.config.dataset, device)}]

        (row,) = r.cached("learning", {"bank": PROTOCOL_BANK, "queries": PROTOCOL_QUERIES}, compute,
                          ("monitor.py", "embed.py", "probes.py"))
        c = r.config
        rows.append({"strength": c.strength, "seed": c.seed, "method": c.method, "augment_family": c.augment_family,
                     "projector_depth": c.projector_depth, **row, "gain": row["knn"] - row["knn_untrained"]})
    return pd.DataFrame(rows)


def untrained_baseline(preset: Preset) -> pd.DataFrame:
    """Randomly initialised encoders, one per seed of the preset, BatchNorm statistics re-estimated on the kNN
    protocol's bank (`monitor.untrained_encoder`): the protocol's kNN accuracy and the linear-probe accuracy of h
    (the C1 protocol). The floor that a trained encoder must beat. Columns: seed, knn, linear."""
    from sslgeo_lib.data import load_dataset
    from sslgeo_lib.embed import encode, split_indices
    from sslgeo_lib.monitor import knn_of_h, untrained_encoder
    from sslgeo_lib.probes import linear_probe
    from sslgeo_lib.training.loop import default_device

    device, ev = default_device(), preset.eval
    data = load_dataset(preset.base.dataset)
    rows = []
    for seed in preset.seeds:
        cfg = preset.base.replace(seed=seed)
        encoder = untrained_encoder(cfg, device)
        train = split_indices(cfg, "train", data.y_train, ev.n_probe_train)  # the probe images of trained runs
        test = split_indices(cfg, "test", data.y_test, ev.test_size(len(data.y_test)))
        h_train = encode(encoder, data.x_train[train], device)
        h_test = encode(encoder, data.x_test[test], device)
        rows.append({"seed": seed, "knn": knn_of_h(encoder, cfg.dataset, device),
                     "linear": linear_probe(h_train, data.y_train[train], h_test, data.y_test[test],
                                            ev.probe_c_grid, ev.probe_val_fraction, seed)["accuracy"]})
    return pd.DataFrame(rows)


def gate_of(runs: list[Run], device=None):
    """The learned gate (rule v3, `stats.learned_gate`) of runs that differ only in strength and seed, from their
    `learning_table`."""
    from sslgeo_lib.stats import learned_gate

    return learned_gate(learning_table(runs, device))


def shape_gate(runs: list[Run], reference_depth: int = 2, device=None):
    """C6's learned gate: a strength passes where both the depth-0 runs and the reference runs (depth
    `reference_depth` at its smallest width, as `claims.shape_verdicts` compares) learned."""
    ref = [r for r in runs if r.config.projector_depth == reference_depth]
    width = min(r.config.projector_width for r in ref)
    zero = gate_of([r for r in runs if r.config.projector_depth == 0], device)
    return zero.both(gate_of([r for r in ref if r.config.projector_width == width], device))
