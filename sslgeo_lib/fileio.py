"""Files: atomic writes, locks and user-given paths. A leaf module that every other module may import.

A file is written to a temporary name in its own folder and renamed into place, so a reader never sees a
half-written file and a kill leaves at most a stray temporary file (named `.<name>.<random>.tmp`).
Locks are OS file locks (`flock`): the kernel releases them when their process dies, so a crashed process
never blocks another.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

TEMP_SUFFIX = ".tmp"


def env_path(name: str, default: Path) -> Path:
    """The absolute path in environment variable `name` (else `default`). A relative value is resolved against
    the directory the user ran from ($PWD, which the shell sets and child processes inherit), not against the
    working directory of whatever runs the code (a notebook kernel runs in book/)."""
    value = os.environ.get(name)
    if not value:
        return Path(default).absolute()
    path = Path(value).expanduser()
    if not path.is_absolute():
        base = os.environ.get("PWD", "")
        path = (Path(base) if os.path.isabs(base) and os.path.isdir(base) else Path.cwd()) / path
    return Path(os.path.normpath(path))


class Busy(Exception):
    """A lock is held by another live process."""


@contextmanager
def file_lock(path: Path, blocking: bool = True, on_wait: Callable | None = None):
    """Hold an exclusive OS lock on `path` (created if missing) for the block. If another process holds it:
    non-blocking, raise `Busy` at once; blocking, call `on_wait()` (if given) and wait for it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # read-write where allowed: on NFS, flock is emulated by fcntl locks, which need a descriptor open for writing;
    # else read-only (a local flock needs no write access), so users sharing a store share its locks
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    except OSError as exc:  # not ours to write, or a read-only file system
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not blocking:
                raise Busy(str(path)) from None
            if on_wait is not None:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def atomic_write(path: Path, writer: Callable) -> None:
    """Write `path` through `writer(binary file)` into a temporary file, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        os.fchmod(fd, 0o666 & ~umask())  # the mode a plain open() gives (mkstemp's is 0600): stores can be shared
        with os.fdopen(fd, "wb") as f:
            writer(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
