"""Atomic file writes: a leaf module that every other module may import.

A file is written to a temporary name in its own folder and renamed into place, so a reader never sees a
half-written file and a kill leaves at most a stray temporary file (named `.<name>.<random>.tmp`).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Callable


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


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def hash_files(files) -> str:
    """sha256 over (name, bytes) of each file, in the given order."""
    h = hashlib.sha256()
    for p in files:
        h.update(Path(p).name.encode() + b"\0" + Path(p).read_bytes())
    return h.hexdigest()
