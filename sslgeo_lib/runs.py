"""One run: load it from the store, or train it under its lock and write it. Below both executors (executor.py)
and the sweeps (sweep.py).

Two names, one for each thing returned: `load_or_train(cfg)` gives the `Run`; `load_or_train_outcome(cfg)` gives
the `Outcome` (the run, and whether it was stored, trained, resumed or loaded after another process trained it).
"""
from __future__ import annotations

import shutil
import warnings
from dataclasses import dataclass

import torch

from sslgeo_lib.config import RunConfig
from sslgeo_lib.data import load_dataset
from sslgeo_lib.fileio import file_lock
from sslgeo_lib.monitor import monitor_for
from sslgeo_lib.provenance import provenance
from sslgeo_lib.store import (
    Run,
    StoreError,
    check_entry,
    check_store,
    entry_path,
    find_entry,
    is_run,
    lock_path,
    read_entry,
    start_entry,
    write_entry,
)
from sslgeo_lib.training import loop


@dataclass(frozen=True)
class Outcome:
    """What `load_or_train_outcome` did for one run: `action` is "stored" (it was complete), "trained", "resumed"
    (from the checkpoint of an interrupted attempt, after `from_epoch` epochs) or "loaded" (another process
    trained it while this one waited for its lock)."""

    run: Run
    action: str
    from_epoch: int = 0


def load_or_train(cfg: RunConfig, progress: bool = True, device=None) -> Run:
    """The stored run for `cfg`; trains it (resuming from a checkpoint if one exists) when absent."""
    return load_or_train_outcome(cfg, progress, device).run


def load_or_train_outcome(cfg: RunConfig, progress: bool = True, device=None) -> Outcome:
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
        result = loop.train(cfg, path, progress=progress, device=device, monitor=monitor_for(cfg))
    except FloatingPointError as exc:  # never stored: a NaN run would pass as complete and be analysed
        shutil.rmtree(path)
        raise FloatingPointError(f"run {path.name} diverged: {exc} (lr={cfg.lr:g}, method {cfg.method}); nothing "
                                 f"was stored. Train it with a smaller learning rate (RunConfig.lr; an objective's "
                                 f"recipe in BeyondGrid.recipes)") from None
    run = write_entry(path, cfg, result.model, result.metrics,
                      provenance(result.device, result.dtype, result.channels_last, result.threads, cfg.dataset))
    return Outcome(run, "resumed" if from_epoch else "trained", from_epoch)


def checkpoint_epoch(path, cfg: RunConfig) -> int:
    """The epochs a checkpoint has completed; 0 when it is unreadable or lacks what the training loop resumes
    from (the model, optimiser, metrics and, for BYOL, the target network): training then starts afresh."""
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
