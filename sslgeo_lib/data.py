"""Datasets as uint8 arrays: `load_dataset(name)` and class-balanced subsets.

CIFAR-10 is found, in this order:
  1. `$SSLGEO_DATA` pointing at torchvision's `cifar-10-batches-py` folder (or its parent), at an ImageFolder
     tree (`train/<class>/*`, `test/<class>/*`), or at a `.tar` / `.tar.gz` of such a tree;
  2. torchvision's download into the cache folder (when the network allows);
  3. otherwise a `FileNotFoundError` that names these options.
The decoded arrays are cached as `.npy` files (`$SSLGEO_CACHE`, default `~/.cache/sslgeo`) keyed by the
source's path, size and modification time, so a second load reads arrays instead of decoding images. The
cache folder is complete only when its MANIFEST.json (written last) is there; the manifest also holds the
dataset's content fingerprint (sha256 of the decoded arrays), which enters every run's id.
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sslgeo_lib.fileio import atomic_write, write_json

DATASETS = ("cifar10",)
_SPLITS = ("train", "test")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass(frozen=True)
class Dataset:
    """Images as uint8 (N, 3, H, W), labels as int64 (N,), class names in label order."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    fingerprint: str  # sha256 of the decoded arrays (see `_fingerprint`)


def cache_dir() -> Path:
    return Path(os.environ.get("SSLGEO_CACHE", Path.home() / ".cache" / "sslgeo"))


def fingerprint(name: str = "cifar10") -> str:
    """The content fingerprint of a dataset's decoded arrays (computed once, kept with the array cache)."""
    return load_dataset(name).fingerprint


def load_dataset(name: str = "cifar10") -> Dataset:
    """Load a dataset by name (see DATASETS); decoded once, then read from the array cache."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; accepted: {', '.join(DATASETS)}")
    return _load_cifar10(_cifar10_source())


# --- locating the source -----------------------------------------------------------------------

def _cifar10_source() -> Path:
    env = os.environ.get("SSLGEO_DATA")
    if env:
        path = Path(env).expanduser()
        if _is_batches_dir(path) or _is_batches_dir(path / "cifar-10-batches-py") or _is_tree(path) \
                or _is_tarball(path):
            return path
        raise FileNotFoundError(f"SSLGEO_DATA={env} is not a CIFAR-10 source. {_OPTIONS}")
    downloaded = cache_dir() / "torchvision"
    if not _is_batches_dir(downloaded / "cifar-10-batches-py"):
        _download(downloaded)
    return downloaded


_OPTIONS = ("Accepted: set SSLGEO_DATA to (1) torchvision's 'cifar-10-batches-py' folder or its parent, "
            "(2) an ImageFolder tree with train/<class>/* and test/<class>/*, or (3) a .tar or .tar.gz of "
            "such a tree; or (4) leave SSLGEO_DATA unset on a machine with internet access, and torchvision "
            "downloads CIFAR-10 into the cache folder ($SSLGEO_CACHE, default ~/.cache/sslgeo).")


def _download(root: Path) -> None:
    import torchvision

    try:
        torchvision.datasets.CIFAR10(str(root), train=True, download=True)
    except Exception as exc:  # network errors come in many types
        raise FileNotFoundError(f"CIFAR-10 was not found and could not be downloaded ({exc}). {_OPTIONS}") from exc


def _is_batches_dir(p: Path) -> bool:
    return p.is_dir() and (p / "data_batch_1").is_file() and (p / "test_batch").is_file()


def _is_tree(p: Path) -> bool:
    return p.is_dir() and all((p / s).is_dir() for s in _SPLITS)


def _is_tarball(p: Path) -> bool:
    return p.is_file() and p.name.endswith((".tar", ".tar.gz", ".tgz"))


# --- decoding, once, into the array cache ------------------------------------------------------

_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


@functools.lru_cache(maxsize=2)
def _load_cifar10(source: Path) -> Dataset:
    stat = source.stat()
    key = hashlib.sha1(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    folder = cache_dir() / f"cifar10-{key}"
    manifest = _read_manifest(folder)
    if manifest is None:
        arrays, classes = _decode(source)
        for n, a in zip(_ARRAYS, arrays):
            atomic_write(folder / f"{n}.npy", lambda f, a=a: np.save(f, a, allow_pickle=False))
        manifest = {"classes": list(classes), "fingerprint": _fingerprint(arrays)}
        write_json(folder / "MANIFEST.json", manifest)
    arrays = [np.load(folder / f"{n}.npy", allow_pickle=False) for n in _ARRAYS]
    return Dataset("cifar10", *arrays, classes=tuple(manifest["classes"]), fingerprint=manifest["fingerprint"])


def _read_manifest(folder: Path) -> dict | None:
    """The decoded cache's manifest when the folder is complete, else None (it is then rebuilt)."""
    try:
        manifest = json.loads((folder / "MANIFEST.json").read_text())
        ok = isinstance(manifest, dict) and isinstance(manifest.get("classes"), list) \
            and isinstance(manifest.get("fingerprint"), str) and all((folder / f"{n}.npy").is_file() for n in _ARRAYS)
    except (OSError, ValueError):
        return None
    return manifest if ok else None


def _fingerprint(arrays) -> str:
    """sha256 over the decoded arrays (shape, dtype and bytes of each): the data's part of a run's id."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}|{a.dtype}".encode())
        h.update(a.data)
    return h.hexdigest()


def _decode(source: Path):
    if _is_tarball(source):
        return _decode_members(_tar_members(source))
    if _is_tree(source):
        files = ((str(p.relative_to(source)), p.read_bytes) for p in sorted(source.rglob("*")) if p.is_file())
        return _decode_members(files)
    batches = source if _is_batches_dir(source) else source / "cifar-10-batches-py"
    return _decode_batches(batches)


def _tar_members(path: Path):
    with tarfile.open(path) as tar:
        for m in tar:
            if m.isfile():
                data = tar.extractfile(m).read()
                yield m.name, (lambda data=data: data)


def _decode_members(members):
    """ImageFolder members (relative path, byte reader) -> arrays; classes sorted, as torchvision does."""
    found = {s: [] for s in _SPLITS}
    for name, read in members:
        parts = Path(name).parts
        if len(parts) >= 3 and parts[-3] in _SPLITS and name.lower().endswith(_IMAGE_SUFFIXES):
            img = np.asarray(Image.open(io.BytesIO(read())).convert("RGB"), dtype=np.uint8)
            found[parts[-3]].append((parts[-2], parts[-1], img))
    if not all(found.values()):
        raise FileNotFoundError(f"no images under train/<class>/ and test/<class>/ in the source. {_OPTIONS}")
    classes = sorted({c for c, _, _ in found["train"]})
    out = []
    for split in _SPLITS:
        items = sorted(found[split], key=lambda t: (classes.index(t[0]), t[1]))
        out += [np.stack([t[2] for t in items]).transpose(0, 3, 1, 2).copy(),
                np.array([classes.index(t[0]) for t in items], dtype=np.int64)]
    return out, classes


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles CIFAR-10's batch files, allowing only plain containers and numpy arrays (no code)."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR-10 batch file")


def _read_batch(path: Path) -> dict:
    with open(path, "rb") as f:
        return _ArrayUnpickler(f, encoding="latin1").load()


def _decode_batches(folder: Path):
    train = [_read_batch(folder / f"data_batch_{i}") for i in range(1, 6)]
    test = _read_batch(folder / "test_batch")
    meta = _read_batch(folder / "batches.meta")

    def arrays(batches):
        x = np.concatenate([np.asarray(b["data"], dtype=np.uint8) for b in batches]).reshape(-1, 3, 32, 32)
        return x, np.concatenate([np.asarray(b["labels"], dtype=np.int64) for b in batches])

    return [*arrays(train), *arrays([test])], list(meta["label_names"])
