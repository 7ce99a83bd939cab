"""The run store: trained models, content-addressed by what shapes their weights. It persists and loads; it
never trains (`sweep.get_or_train` decides "load or train").

A run's id = sha256 of its RunConfig (JSON), the code that shapes its weights (every module of
`sslgeo_lib/training/`), the fingerprint of the decoded dataset (`data.fingerprint`) and the numerics it trains
with here (device type and resolved precision, `training.loop.numerics`). Nothing else: editing
presets, parameter parsing, provenance, the monitor, this store or any analysis module renames no run.

Layout: `$SSLGEO_RUNS` (default `runs/` at the repository root) / `<run id>/` holding
  config.json, weights.safetensors, metrics.json, provenance.json, and MANIFEST.json (sha256 of each,
  written last: an entry without it is partial). `checkpoint.pt` exists only while training.
  cache/  derived results, each keyed by its own settings and the code that computes it (`Run.cached`).
Every file is written to a temporary name and renamed into place. Weights load through safetensors and
checkpoints through `torch.load(weights_only=True)`: nothing executable is ever unpickled.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from sslgeo_lib.config import RunConfig
from sslgeo_lib.fileio import atomic_write, hash_files, sha256_file, write_json

_PACKAGE = Path(__file__).resolve().parent
TRAINING_CODE = _PACKAGE / "training"  # the boundary: every .py file below it shapes weights
ENTRY_FILES = ("config.json", "weights.safetensors", "metrics.json", "provenance.json")


def runs_dir() -> Path:
    return Path(os.environ.get("SSLGEO_RUNS", _PACKAGE.parent / "runs"))


def code_hash(modules=None) -> str:
    """sha256 of the named library modules (paths relative to the package); default: the training code."""
    files = sorted(TRAINING_CODE.rglob("*.py")) if modules is None else [_PACKAGE / m for m in modules]
    return hash_files(files)


def run_id(cfg: RunConfig, device=None) -> str:
    from sslgeo_lib.data import fingerprint
    from sslgeo_lib.training.loop import numerics

    payload = (json.dumps(cfg.to_dict(), sort_keys=True) + code_hash() + fingerprint(cfg.dataset)
               + json.dumps(numerics(cfg, device), sort_keys=True))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass
class Run:
    """A complete store entry."""

    path: Path
    config: RunConfig
    metrics: dict
    provenance: dict

    @property
    def id(self) -> str:
        return self.path.name

    def model(self, device="cpu"):
        """The trained SSLModel in eval mode (the global RNG state is not touched)."""
        from safetensors.torch import load_file

        from sslgeo_lib.training.loop import new_model

        model = new_model(self.config)
        model.load_state_dict(load_file(self.path / "weights.safetensors", device=str(device)))
        return model.to(device).eval()

    def cached(self, name: str, settings: dict, compute: Callable, code: tuple[str, ...]):
        """The result of `compute()`, stored under this run and reused while `settings` and the modules named
        in `code` are unchanged. A dict of numpy arrays is stored as .npz; a list of dicts (tidy rows) as JSON."""
        key = hashlib.sha256((json.dumps(settings, sort_keys=True) + code_hash(code)).encode()).hexdigest()[:16]
        stem = self.path / "cache" / f"{name}-{key}"
        for path, read in ((stem.with_suffix(".npz"), _read_npz), (stem.with_suffix(".json"), _read_rows)):
            if path.is_file():
                try:
                    return read(path)
                except (OSError, ValueError) as exc:
                    warnings.warn(f"unreadable cache {path} ({exc}); recomputing", stacklevel=2)
        value = compute()
        if isinstance(value, dict):
            atomic_write(stem.with_suffix(".npz"), lambda f: np.savez(f, **value))
        else:
            write_json(stem.with_suffix(".json"), value)
        return value


def _read_npz(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _read_rows(path: Path) -> list[dict]:
    rows = json.loads(path.read_text())
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ValueError("not a list of rows")
    return rows


def check_entry(path: Path, cfg: RunConfig) -> str | None:
    """None when the entry is complete and intact, else what is wrong with it."""
    manifest = path / "MANIFEST.json"
    if not manifest.is_file():
        return "partial (no MANIFEST.json)"
    try:
        expected = json.loads(manifest.read_text())
        if not isinstance(expected, dict):
            return "corrupt (MANIFEST.json is not an object)"
        for name in ENTRY_FILES:
            if sha256_file(path / name) != expected.get(name):
                return f"corrupt ({name} does not match its checksum)"
        if json.loads((path / "config.json").read_text()) != cfg.to_dict():
            return "corrupt (config.json differs from the requested config)"
    except (OSError, ValueError) as exc:
        return f"corrupt ({type(exc).__name__}: {exc})"
    return None


def entry_path(cfg: RunConfig, device=None) -> Path:
    return runs_dir() / run_id(cfg, device)


def read_entry(path: Path, cfg: RunConfig) -> Run:
    read = lambda n: json.loads((path / n).read_text())  # noqa: E731
    return Run(path, cfg, read("metrics.json"), read("provenance.json"))


def load_run(cfg: RunConfig) -> Run | None:
    """The stored run for `cfg`, or None if absent or not intact."""
    path = entry_path(cfg)
    return read_entry(path, cfg) if check_entry(path, cfg) is None else None


def write_entry(path: Path, cfg: RunConfig, model, metrics: dict, provenance: dict) -> Run:
    """Persist a trained model as a complete entry (MANIFEST last) and drop its checkpoint."""
    from safetensors.torch import save

    (path / "MANIFEST.json").unlink(missing_ok=True)
    write_json(path / "config.json", cfg.to_dict())
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(path / "weights.safetensors", lambda f: f.write(save(state)))
    write_json(path / "metrics.json", metrics)
    write_json(path / "provenance.json", provenance)
    write_json(path / "MANIFEST.json", {n: sha256_file(path / n) for n in ENTRY_FILES})
    (path / "checkpoint.pt").unlink(missing_ok=True)
    return read_entry(path, cfg)


def list_runs() -> list[dict]:
    """One row per store entry: id, status, and the config fields that name a sweep point."""
    rows = []
    for path in sorted(p for p in runs_dir().glob("*") if p.is_dir()):
        try:
            cfg = RunConfig(**json.loads((path / "config.json").read_text()))
        except (OSError, ValueError, TypeError, KeyError):
            status = "training (interrupted or running)" if (path / "checkpoint.pt").is_file() else "unreadable"
            rows.append({"id": path.name, "status": status})
            continue
        current = run_id(cfg) == path.name
        problem = check_entry(path, cfg)
        status = "ok" if problem is None else problem
        rows.append({"id": path.name, "status": status if current else f"{status}, stale code or data",
                     **{k: getattr(cfg, k) for k in ("encoder", "strength", "seed", "epochs", "n_train")}})
    return rows


def clean(stale_only: bool = True) -> list[str]:
    """Remove stale (older code or data), partial and corrupt entries; everything if not stale_only.
    An entry that is training (a checkpoint and no config yet) is never removed."""
    import shutil

    removed = []
    for row in list_runs():
        if row["status"].startswith("training"):
            continue
        if not stale_only or row["status"] != "ok":
            shutil.rmtree(runs_dir() / row["id"])
            removed.append(row["id"])
    return removed
