"""The run store: trained models, content-addressed by their RunConfig and the training code.

Layout: `$SSLGEO_RUNS` (default `runs/` at the repository root) / `<run id>/` holding
  config.json, weights.safetensors, metrics.json, provenance.json, and MANIFEST.json (sha256 of each,
  written last: an entry without it is partial). `checkpoint.pt` exists only while training.
  cache/  derived arrays (embeddings, metrics) keyed by their settings and the library's code.
Every file is written to a temporary name and renamed into place, so a kill leaves no half-written file.
Weights load through safetensors and checkpoints through `torch.load(weights_only=True)`: nothing
executable is ever unpickled.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    from sslgeo_lib.config import RunConfig

_PACKAGE = Path(__file__).resolve().parent
# The modules whose code decides what a training run produces; a change to any of them names new runs.
TRAINING_MODULES = ("augment.py", "config.py", "data.py", "losses.py", "models.py", "train.py")
ENTRY_FILES = ("config.json", "weights.safetensors", "metrics.json", "provenance.json")


def atomic_write(path: Path, writer: Callable) -> None:
    """Write `path` through `writer(binary file)` into a temporary file, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            writer(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj) -> None:
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2, sort_keys=True).encode()))


def runs_dir() -> Path:
    return Path(os.environ.get("SSLGEO_RUNS", _PACKAGE.parent / "runs"))


def _hash_files(files) -> str:
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def code_hash() -> str:
    """sha256 of the training code (TRAINING_MODULES)."""
    return _hash_files(_PACKAGE / m for m in TRAINING_MODULES)


def library_hash() -> str:
    """sha256 of every module of the library: keys derived caches."""
    return _hash_files(sorted(_PACKAGE.glob("*.py")))


def run_id(cfg: "RunConfig") -> str:
    payload = json.dumps(cfg.to_dict(), sort_keys=True) + code_hash()
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Run:
    """A complete store entry."""

    path: Path
    config: "RunConfig"
    metrics: dict
    provenance: dict

    @property
    def id(self) -> str:
        return self.path.name

    def model(self, device="cpu"):
        """The trained SSLModel in eval mode."""
        from safetensors.torch import load_file

        from sslgeo_lib.train import new_model

        model = new_model(self.config)
        model.load_state_dict(load_file(self.path / "weights.safetensors", device=str(device)))
        return model.to(device).eval()

    def cached(self, name: str, settings: dict, compute: Callable[[], dict]) -> dict:
        """Arrays from `compute()` (a dict of numpy arrays), stored under this run and reused while
        `settings` and the library's code are unchanged."""
        key = hashlib.sha256((json.dumps(settings, sort_keys=True) + library_hash()).encode()).hexdigest()[:16]
        path = self.path / "cache" / f"{name}-{key}.npz"
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as f:
                    return {k: f[k] for k in f.files}
            except (OSError, ValueError) as exc:
                warnings.warn(f"unreadable cache {path} ({exc}); recomputing", stacklevel=2)
        arrays = compute()
        atomic_write(path, lambda f: np.savez(f, **arrays))
        return arrays


def _check_entry(path: Path, cfg: "RunConfig") -> str | None:
    """None when the entry is complete and intact, else what is wrong with it."""
    manifest = path / "MANIFEST.json"
    if not manifest.is_file():
        return "partial (no MANIFEST.json)"
    try:
        expected = json.loads(manifest.read_text())
        for name in ENTRY_FILES:
            if _sha256(path / name) != expected[name]:
                return f"corrupt ({name} does not match its checksum)"
        if json.loads((path / "config.json").read_text()) != cfg.to_dict():
            return "corrupt (config.json differs from the requested config)"
    except (OSError, ValueError, KeyError) as exc:
        return f"corrupt ({type(exc).__name__}: {exc})"
    return None


def load_run(cfg: "RunConfig") -> Run | None:
    """The stored run for `cfg`, or None if absent or not intact."""
    path = runs_dir() / run_id(cfg)
    return _read_entry(path, cfg) if _check_entry(path, cfg) is None else None


def _read_entry(path: Path, cfg: "RunConfig") -> Run:
    read = lambda n: json.loads((path / n).read_text())  # noqa: E731
    return Run(path, cfg, read("metrics.json"), read("provenance.json"))


def get_or_train(cfg: "RunConfig", progress: bool = True, device=None) -> Run:
    """The stored run for `cfg`; trains it (resuming from a checkpoint if one exists) when absent.

    A corrupt entry is reported with a warning, removed and retrained. A second call never retrains.
    """
    from sslgeo_lib.train import train

    path = runs_dir() / run_id(cfg)
    problem = _check_entry(path, cfg)
    if problem is None:
        return _read_entry(path, cfg)
    if path.exists() and not (path / "checkpoint.pt").is_file():
        warnings.warn(f"run {path.name} is {problem}; retraining it", stacklevel=2)
        shutil.rmtree(path)
    elif path.exists():
        warnings.warn(f"run {path.name} is {problem}; resuming from its last checkpoint", stacklevel=2)
    result = train(cfg, path, progress=progress, device=device)
    _write_entry(path, cfg, result)
    return _read_entry(path, cfg)


def _write_entry(path: Path, cfg: "RunConfig", result) -> None:
    from safetensors.torch import save

    (path / "MANIFEST.json").unlink(missing_ok=True)
    write_json(path / "config.json", cfg.to_dict())
    state = {k: v.detach().cpu().contiguous() for k, v in result.model.state_dict().items()}
    atomic_write(path / "weights.safetensors", lambda f: f.write(save(state)))
    write_json(path / "metrics.json", result.metrics)
    write_json(path / "provenance.json", result.provenance)
    write_json(path / "MANIFEST.json", {n: _sha256(path / n) for n in ENTRY_FILES})
    (path / "checkpoint.pt").unlink(missing_ok=True)


def list_runs() -> list[dict]:
    """One row per store entry: id, status, and the config fields that name a sweep point."""
    from sslgeo_lib.config import RunConfig

    rows = []
    for path in sorted(p for p in runs_dir().glob("*") if p.is_dir()):
        try:
            cfg = RunConfig(**json.loads((path / "config.json").read_text()))
        except (OSError, ValueError, TypeError, KeyError):
            rows.append({"id": path.name, "status": "unreadable"})
            continue
        current = run_id(cfg) == path.name
        problem = _check_entry(path, cfg)
        status = "ok" if problem is None else problem
        rows.append({"id": path.name, "status": status if current else f"{status}, stale code",
                     **{k: getattr(cfg, k) for k in ("encoder", "strength", "seed", "epochs", "n_train")}})
    return rows


def clean(stale_only: bool = True) -> list[str]:
    """Remove stale (trained by older code), partial and corrupt entries; everything if not stale_only."""
    removed = []
    for row in list_runs():
        if not stale_only or row["status"] != "ok":
            shutil.rmtree(runs_dir() / row["id"])
            removed.append(row["id"])
    return removed
