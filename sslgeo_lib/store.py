"""The run store: trained models, content-addressed by what shapes their weights. It persists and loads; it
never trains (`runs.load_or_train` decides "load or train").

A run's id = sha256 of its RunConfig (JSON), the code that shapes its weights (every module of
`sslgeo_lib/training/`), the fingerprint of the decoded dataset (`data.fingerprint`) and the numerics it trains
with here (device type and resolved precision, `training.loop.numerics`). Nothing else: editing
presets, parameter parsing, provenance, the monitor, this store or any analysis module renames no run.

Layout: `$SSLGEO_RUNS` (default `runs/` at the repository root) / `<run id>/` (16 hex digits) holding
  config.json (written first: it marks the folder as a run of this store), weights.safetensors, metrics.json,
  provenance.json, and MANIFEST.json (sha256 of each, written last: an entry without it is partial).
  `checkpoint.pt` exists only while training.
  cache/  derived results, each keyed by its own settings and the code that computes it (`Run.cached`); when
          the store is read-only they go to the cache folder instead ($SSLGEO_CACHE/derived/<run id>/).
`$SSLGEO_RUNS/.locks/<run id>.lock`: an OS lock held while a run trains, so two processes never train or write
the same entry at once (the second waits, then loads what the first wrote), and `clean` never touches it.
Every file is written to a temporary name and renamed into place. Weights load through safetensors and
checkpoints through `torch.load(weights_only=True)`: nothing executable is ever unpickled. Anything in the
store folder that is not provably a run (other names, symlinks, folders without a run's config) is reported
as foreign and never modified.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
from safetensors.torch import load_file, save

from sslgeo_lib.config import RunConfig
from sslgeo_lib.data import cache_dir, fingerprint
from sslgeo_lib.fileio import TEMP_SUFFIX, Busy, atomic_write, env_path, file_lock, hash_files, sha256_file, write_json
from sslgeo_lib.training.loop import cpu_state, new_model, numerics, snapshot_epochs, snapshot_name

_PACKAGE = Path(__file__).resolve().parent
TRAINING_CODE = _PACKAGE / "training"  # the boundary: every .py file below it shapes weights
ENTRY_FILES = ("config.json", "weights.safetensors", "metrics.json", "provenance.json")
RUN_NAME = re.compile(r"^[0-9a-f]{16}$")
LOCKS = ".locks"


def runs_dir() -> Path:
    """The store folder: $SSLGEO_RUNS (a relative value is taken from where the user ran), else runs/."""
    return env_path("SSLGEO_RUNS", _PACKAGE.parent / "runs")


class StoreError(OSError):
    """The store cannot take a new entry here (not a folder, not writable, or too little free space)."""


def code_hash(modules=None) -> str:
    """sha256 of the named library modules (paths relative to the package); default: the training code."""
    files = sorted(TRAINING_CODE.rglob("*.py")) if modules is None else [_PACKAGE / m for m in modules]
    return hash_files(files)


def run_id(cfg: RunConfig, device=None, numbers: dict | None = None) -> str:
    """The run's name. `numbers` ({"device": type, "precision": ...}) defaults to how `cfg` trains on `device`
    here; pass a stored run's recorded numerics to check its name on a machine of another kind."""

    numbers = numerics(cfg, device) if numbers is None else numbers
    payload = (json.dumps(cfg.to_dict(), sort_keys=True) + code_hash() + fingerprint(cfg.dataset)
               + json.dumps(numbers, sort_keys=True))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Run:
    """A complete store entry; `epoch` set (by `at`) makes it the run as it was after that epoch (a snapshot)."""

    path: Path
    config: RunConfig
    metrics: dict
    provenance: dict
    epoch: int | None = None

    @property
    def id(self) -> str:
        return self.path.name if self.epoch is None else f"{self.path.name}@e{self.epoch}"

    @property
    def epochs(self) -> list[int]:
        """The epochs this run has weights for: its snapshots, then its last epoch."""
        return [*self.metrics.get("snapshots", []), self.config.epochs]

    def at(self, epoch: int) -> "Run":
        """This run after `epoch` (one of `epochs`): its model and derived caches are that snapshot's."""
        if epoch not in self.epochs:
            raise ValueError(f"run {self.path.name} has weights after epochs {self.epochs}, not after {epoch}")
        return replace(self, epoch=None if epoch == self.config.epochs else epoch)

    def model(self, device="cpu"):
        """The trained SSLModel (or the snapshot of `epoch`) in eval mode (the global RNG state is not touched)."""

        name = "weights.safetensors" if self.epoch is None else snapshot_name(self.epoch)
        model = new_model(self.config)
        model.load_state_dict(load_file(self.path / name, device=str(device)))
        return model.to(device).eval()

    def cache_folder(self) -> Path:
        """Where derived results go: the entry's cache/ folder, or the user's cache folder when the store is
        read-only (analysis of a store one may not write to still works, and is still cached)."""

        own = self.path / "cache"
        return own if _writable(own if own.is_dir() else self.path) else cache_dir() / "derived" / self.path.name

    def cached(self, name: str, settings: dict, compute: Callable, code: tuple[str, ...]):
        """`cached_result` stored under this run (its own cache/ folder first, else `cache_folder`), keyed also
        by the snapshot epoch when this is a snapshot."""
        if self.epoch is not None:
            settings = {**settings, "snapshot_epoch": self.epoch}
        return cached_result(name, settings, compute, code, self.cache_folder(), self.path / "cache")


def cached_result(name: str, settings: dict, compute: Callable, code: tuple[str, ...], folder: Path,
                  also_read: Path | None = None):
    """The result of `compute()`, stored in `folder` (and looked for first in `also_read`), reused while
    `settings` and the library modules named in `code` are unchanged. A dict of numpy arrays is stored as .npz;
    a list of dicts (tidy rows) as JSON. An unreadable stored result is recomputed, with a warning."""
    key = hashlib.sha256((json.dumps(settings, sort_keys=True) + code_hash(code)).encode()).hexdigest()[:16]
    stem = folder / f"{name}-{key}"
    for where in dict.fromkeys(f for f in (also_read, folder) if f is not None):
        for path, read in ((where / f"{stem.name}.npz", _read_npz), (where / f"{stem.name}.json", _read_rows)):
            if path.is_file():
                try:
                    return read(path)
                except (OSError, ValueError) as exc:
                    warnings.warn(f"unreadable cache {path} ({exc}); recomputing", stacklevel=3)
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


def _writable(folder: Path) -> bool:
    """True when a file can be created in `folder` (tried, not guessed from permission bits)."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".write-test.", suffix=TEMP_SUFFIX)
    except OSError:
        return False
    os.close(fd)
    os.unlink(tmp)
    return True


def check_entry(path: Path, cfg: RunConfig) -> str | None:
    """None when the entry is complete and intact, else what is wrong with it."""
    if path.is_symlink():
        return "foreign (a symlink, not a run folder)"
    manifest = path / "MANIFEST.json"
    if not manifest.is_file():
        return "partial (no MANIFEST.json)"
    try:
        expected = json.loads(manifest.read_text())
        if not isinstance(expected, dict):
            return "corrupt (MANIFEST.json is not an object)"
        for name in entry_files(cfg):
            if (path / name).is_symlink():
                return f"corrupt ({name} is a symlink)"
            if sha256_file(path / name) != expected.get(name):
                return f"corrupt ({name} does not match its checksum)"
        if json.loads((path / "config.json").read_text()) != cfg.to_dict():
            return "corrupt (config.json differs from the requested config)"
    except FileNotFoundError as exc:
        return f"corrupt (missing {Path(exc.filename).name})"
    except OSError as exc:  # permissions, I/O errors: nothing proves the entry wrong, so nothing may delete it
        return f"unreadable ({type(exc).__name__}: {exc}; left alone)"
    except ValueError as exc:
        return f"corrupt ({type(exc).__name__}: {exc})"
    return None


def entry_files(cfg: RunConfig) -> tuple[str, ...]:
    """The files of a complete entry of `cfg`: ENTRY_FILES and its weight snapshots."""

    return (*ENTRY_FILES, *(snapshot_name(e) for e in snapshot_epochs(cfg)))


def entry_path(cfg: RunConfig, device=None) -> Path:
    """Where `cfg` trains on `device` (default: this machine's), named with those numerics."""
    return runs_dir() / run_id(cfg, device)


# Every numerics a run may have trained with: its name is one of these run_id(cfg, numbers=...) for its config.
NUMERICS = tuple({"device": d, "precision": p} for d in ("cuda", "cpu") for p in ("bf16", "fp32"))


def find_entry(cfg: RunConfig, device=None) -> Path | None:
    """`cfg`'s complete entry: the one named with this machine's numerics, else one trained with other numerics
    (on a GPU, or on a CPU with or without bf16) under the same code and data, so that runs trained on a cluster's
    GPUs are read, not retrained, on a CPU; None when there is none (it would train at `entry_path(cfg, device)`)."""
    here = entry_path(cfg, device)
    if check_entry(here, cfg) is None:
        return here
    for numbers in NUMERICS:
        path = runs_dir() / run_id(cfg, numbers=numbers)
        if path != here and check_entry(path, cfg) is None:
            return path
    return None


def lock_path(run: str) -> Path:
    return runs_dir() / LOCKS / f"{run}.lock"


def read_entry(path: Path, cfg: RunConfig) -> Run:
    read = lambda n: json.loads((path / n).read_text())  # noqa: E731
    return Run(path, cfg, read("metrics.json"), read("provenance.json"))


def load_run(cfg: RunConfig) -> Run | None:
    """The stored run for `cfg`, or None if absent or not intact."""
    path = find_entry(cfg)
    return None if path is None else read_entry(path, cfg)


def check_store(cfg: RunConfig) -> None:
    """Before training `cfg`: the store is a folder we can write and has room for one entry (weights, a
    checkpoint with optimiser state, and slack); else a StoreError that says what is wrong and what to do."""
    root = runs_dir()
    if root.exists() and not root.is_dir():
        raise StoreError(f"the run store {root} (SSLGEO_RUNS) is a file, not a folder; point SSLGEO_RUNS at a folder "
                         f"(it is created if missing)")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"the run store {root} (SSLGEO_RUNS) cannot be created: {exc.strerror}") from None
    if not _writable(root):
        raise StoreError(f"the run store {root} (SSLGEO_RUNS) is not writable, and run {run_id(cfg)} is not in it; "
                         f"point SSLGEO_RUNS at a writable folder (stored runs of a read-only store are still read)")
    need, free = entry_bytes(cfg), shutil.disk_usage(root).free
    if free < need:
        raise StoreError(f"the run store {root} has {free / 1e6:,.0f} MB free; training a run needs about "
                         f"{need / 1e6:,.0f} MB (weights, checkpoint and slack): free some space or move SSLGEO_RUNS")


def entry_bytes(cfg: RunConfig) -> int:
    """Disk space one run needs at its peak while training, in float32 parameter copies: the final weights, two
    intermediate snapshots, and two checkpoints (weights + momentum each) while one replaces the other; + 16 MB."""

    n_params = sum(p.numel() for p in new_model(cfg).parameters())
    return 4 * n_params * 8 + 16 * 2**20


def start_entry(path: Path, cfg: RunConfig) -> None:
    """Mark `path` as a run of this store before training into it (its config first; the MANIFEST comes last).
    A symlink at the run's name is replaced (the link, never its target); any other item there that is not a
    run of this store is a StoreError that names it (nothing of the user's is deleted)."""
    if path.is_symlink():
        path.unlink()
    elif path.exists() and not is_run(path) and not _holds_only_run_files(path):
        raise StoreError(f"{path} is in the way of run {path.name} and is not a run of this store; "
                         f"move it away (nothing was changed)")
    write_json(path / "config.json", cfg.to_dict())


def write_entry(path: Path, cfg: RunConfig, model, metrics: dict, provenance: dict) -> Run:
    """Persist a trained model as a complete entry (MANIFEST last, covering the snapshots training left in
    `path`); drop its checkpoint."""

    (path / "MANIFEST.json").unlink(missing_ok=True)
    write_json(path / "config.json", cfg.to_dict())
    state = cpu_state(model)
    atomic_write(path / "weights.safetensors", lambda f: f.write(save(state)))
    write_json(path / "metrics.json", metrics)
    write_json(path / "provenance.json", provenance)
    write_json(path / "MANIFEST.json", {n: sha256_file(path / n) for n in entry_files(cfg)})
    (path / "checkpoint.pt").unlink(missing_ok=True)
    return read_entry(path, cfg)


TEMP_AGE = 3600  # seconds: a temporary file untouched this long belongs to no live writer


def _leftovers(path: Path, finished: bool, remove: bool) -> list[Path]:
    """Temporary files of interrupted writes under an entry (untouched for TEMP_AGE: a live writer keeps its
    file fresh) and, once the entry is finished, its checkpoint."""
    now = time.time()
    found = [Path(d) / n for d, _, names in os.walk(path) for n in names  # os.walk never follows symlinks
             if n.startswith(".") and n.endswith(TEMP_SUFFIX) and _age(Path(d) / n, now) > TEMP_AGE]
    if finished and (path / "checkpoint.pt").is_file():
        found.append(path / "checkpoint.pt")
    if remove:
        for p in found:
            p.unlink(missing_ok=True)
    return found


def _holds_only_run_files(path: Path) -> bool:
    """A folder holding nothing but what training writes (a checkpoint, snapshots, temporary files)."""
    ours = ("checkpoint.pt", "cache", "MANIFEST.json", *ENTRY_FILES)
    return path.is_dir() and not path.is_symlink() and all(
        p.name in ours or re.fullmatch(r"weights-e\d+\.safetensors", p.name)
        or (p.name.startswith(".") and p.name.endswith(TEMP_SUFFIX)) for p in path.iterdir())


def _age(path: Path, now: float) -> float:
    try:
        return now - path.lstat().st_mtime
    except OSError:
        return 0.0


def _read_config(path: Path) -> RunConfig | None:
    try:
        return RunConfig(**json.loads((path / "config.json").read_text()))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def is_run(path: Path) -> bool:
    """Provably a run of this store: a real folder with a run's name holding a run's config.json (or a MANIFEST
    that lists a run's files)."""
    if path.is_symlink() or not path.is_dir() or not RUN_NAME.match(path.name):
        return False
    if (path / "config.json").is_file() and not (path / "config.json").is_symlink() and _read_config(path):
        return True
    try:
        manifest = json.loads((path / "MANIFEST.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and set(ENTRY_FILES) <= set(manifest)


def _busy(run: str) -> bool:
    """True while another process holds the run's training lock."""
    if not lock_path(run).is_file():
        return False
    try:
        with file_lock(lock_path(run), blocking=False):
            return False
    except Busy:
        return True


def list_runs() -> list[dict]:
    """One row per item in the store folder: id, kind ("run" or "foreign"), status, and for runs `state`
    (ok, resumable, training, partial, corrupt, unreadable), `origin` (see `_origin`: "this", "other code",
    "other data", "other code or data", or None when the identity cannot be checked here), `stale` (True for a
    run of other code or data, None when unchecked) and the config fields that name a sweep point. A malformed or
    unreadable item is reported in its row; nothing here raises because of one entry."""
    root = runs_dir()
    rows = []
    items = sorted(p for p in root.iterdir() if p.name != LOCKS) if root.is_dir() else []
    for path in items:
        try:
            rows.append(_run_row(path) if is_run(path) else
                        {"id": path.name, "kind": "foreign", "status": "foreign (" + (
                            "a symlink" if path.is_symlink() else "not a run of this store") + "; left alone)"})
        except OSError as exc:
            rows.append({"id": path.name, "kind": "foreign",
                         "status": f"unreadable ({type(exc).__name__}: {exc.strerror}; left alone)"})
    return rows


def _run_row(path: Path, locked: bool = False) -> dict:
    """A run's row; `locked`: the caller holds the run's lock (so nobody else can be training it)."""
    cfg = _read_config(path)
    if not locked and _busy(path.name):
        state, status = "training", "training (running now)"
    elif cfg is None:
        state, status = "corrupt", "corrupt (config.json unreadable)"
    else:
        status = check_entry(path, cfg) or "ok"
        state = status.split(" ")[0]
        if state == "partial" and (path / "checkpoint.pt").is_file():
            state, status = "resumable", "partial (interrupted; resumes from its checkpoint)"
    row = {"id": path.name, "kind": "run", "state": state, "status": status, "origin": None, "stale": None}
    if cfg is not None:
        row.update({k: getattr(cfg, k) for k in ("encoder", "strength", "seed", "epochs", "n_train", "method",
                                                 "augment_family", "dataset")})
        try:
            row["origin"] = _origin(path, cfg)
            row["stale"] = row["origin"] != "this"
        except (OSError, ValueError) as exc:  # e.g. no data to fingerprint: the identity cannot be checked here
            row["status"] = f"{status}, identity unchecked ({type(exc).__name__}; kept)"
        if row["stale"]:
            flags = {"other code": "--other-code", "other data": "--other-data",
                     "other code or data": "--other-code --other-data"}[row["origin"]]
            row["status"] = f"{status}, trained by {row['origin']} (kept; clean {flags} or its id removes it)"
    return row


def _origin(path: Path, cfg: RunConfig) -> str:
    """Whose run this is: "this" (its name is what this code and this data name it), "other data" (the data
    fingerprint it recorded differs from this machine's data of its dataset), "other code" (it recorded this
    machine's data, so its training code differs) or "other code or data" (it recorded neither: interrupted
    before it finished). Raises OSError or ValueError when this machine's data cannot be read."""

    if _stored_id(path, cfg) == path.name:
        return "this"
    if not (path / "provenance.json").is_file() and path.name in {  # interrupted on another kind of machine
            run_id(cfg, numbers=numbers) for numbers in NUMERICS}:
        return "this"
    try:
        recorded = json.loads((path / "provenance.json").read_text())["data"]["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        return "other code or data"
    return "other code" if recorded == fingerprint(cfg.dataset) else "other data"


def _stored_id(path: Path, cfg: RunConfig) -> str:
    """What the entry's name would be today, with the numerics it recorded (a GPU run is not stale on a CPU)."""
    try:
        prov = json.loads((path / "provenance.json").read_text())
        numbers = {"device": prov["device"].split(":")[0], "precision": prov["precision"]}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        numbers = None  # not trained yet: how it would train here
    return run_id(cfg, numbers=numbers)


def _removable(row: dict, other_code: bool, other_data: bool, ids: frozenset, everything: bool) -> str | None:
    """'whole' (remove the entry), 'leftovers' (its temporary files and leftover checkpoint) or None (touch
    nothing), for `clean`'s choices."""
    if row["kind"] != "run" or row["state"] in ("training", "unreadable"):
        return None
    if everything or row["id"] in ids:
        return "whole"
    origin = row["origin"]
    if origin == "this":
        if row["state"] in ("corrupt", "partial"):
            return "whole"
        return "leftovers" if row["state"] == "ok" else None  # a resumable run keeps its checkpoint
    if origin is None:  # identity not checkable here: keep it whole
        return "leftovers" if row["state"] == "ok" else None
    chosen = {"other code": other_code, "other data": other_data, "other code or data": other_code and other_data}
    return "whole" if chosen[origin] else None


def clean(other_code: bool = False, other_data: bool = False, ids=(), everything: bool = False,
          dry_run: bool = False) -> list[str]:
    """Remove what is provably garbage: corrupt and partial (not resumable) entries of this code and data, and the
    old temporary files and leftover checkpoints of its finished runs. Runs trained by other code or on other data
    (a colleague's checkout sharing the store, another SSLGEO_DATA) are kept unless `other_code` / `other_data`
    asks for them; `ids` names runs to remove whatever they are; `everything` removes every run. A run whose
    identity cannot be checked here (no data) is kept. Returns what was (or, with `dry_run`, would be) removed,
    as paths relative to the store. Only provable runs are touched; symlinks are never followed; each entry is
    re-examined under its lock, so a run being trained (its lock held) or finished meanwhile is never removed.
    A named id that is not a run of this store is a ValueError (nothing is removed)."""
    root, removed, ids = runs_dir(), [], frozenset(ids)
    rows = list_runs()
    unknown = sorted(ids - {r["id"] for r in rows if r["kind"] == "run"})
    if unknown:
        raise ValueError(f"no run {', '.join(unknown)} in the store {root} (sslgeo list shows its runs); nothing "
                         f"was removed")
    choice = (other_code, other_data, ids, everything)
    for row in rows:
        if _removable(row, *choice) is None:
            continue
        path = root / row["id"]
        try:
            with nullcontext() if dry_run else file_lock(lock_path(row["id"]), blocking=False):
                if not is_run(path):
                    continue
                action = _removable(_run_row(path, locked=not dry_run), *choice)  # decided again, under the lock
                if action == "whole":
                    removed.append(row["id"])
                    if not dry_run:
                        shutil.rmtree(path)
                elif action == "leftovers":
                    removed += [str(p.relative_to(root)) for p in _leftovers(path, True, remove=not dry_run)]
        except (Busy, OSError):  # being trained, or unreadable: left alone
            continue
    return removed
