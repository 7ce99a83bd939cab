"""Datasets as uint8 arrays (N, 3, 32, 32): `load_dataset(name)`.

A dataset is a name (DATASETS) or the path of an ImageFolder tree (`train/<class>/*`, `test/<class>/*`) or of a
`.tar` / `.tar.gz` of one, with its own classes (sorted folder names, as torchvision's ImageFolder) and image
size: every image is resized so that its shorter side is RESOLUTION pixels, then centre-cropped to RESOLUTION x
RESOLUTION (torchvision's Resize + CenterCrop; bicubic, antialiased). CIFAR-100 and STL-10 (its 5,000 labelled
training and 8,000 test images; 96 x 96, resized) come from torchvision's download into the cache folder where
the network allows; offline, pass a tree or tarball of them by path.

CIFAR-10 is found, in this order:
  1. `$SSLGEO_DATA` pointing at torchvision's `cifar-10-batches-py` folder (or its parent), at an ImageFolder
     tree (`train/<class>/*`, `test/<class>/*`), or at a `.tar` / `.tar.gz` of such a tree;
  2. torchvision's download into the cache folder (when the network allows);
  3. otherwise a `FileNotFoundError` that names these options.
The decoded arrays are cached as `.npy` files (`$SSLGEO_CACHE`, default `~/.cache/sslgeo`) keyed by the
source's identity: the sha256 of a tarball's bytes, or the path, size and modification time of every file of a
folder source (so adding, removing or editing any member re-decodes). The cache folder is built under a
temporary name and renamed into place as a unit, MANIFEST.json inside it; the manifest holds the dataset's
content fingerprint (sha256 of the decoded arrays), which enters every run's id and is re-checked against the
arrays on every load (a damaged cache is rebuilt, never used).

A source is rejected, with the file named, when it is truncated (a tar without its end-of-archive blocks, a
gzip stream cut short, a short batch file), when an image cannot be decoded, or when it is short: CIFAR-10 is
class-balanced, so a split whose classes differ in size (or differ from the training classes) is incomplete
(a tree given by path may be unbalanced; its test classes must be training classes).
Relative SSLGEO_DATA / SSLGEO_CACHE paths are resolved against the directory the user ran from.
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import pickle
import shutil
import tarfile
import tempfile
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torchvision
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from sslgeo_lib.fileio import TEMP_SUFFIX, env_path, sha256_file, umask, write_json

DATASETS = ("cifar10", "cifar100", "stl10")
RESOLUTION = 32  # the side every preset's encoders see; other sizes are resized to it
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
    return env_path("SSLGEO_CACHE", Path.home() / ".cache" / "sslgeo")


def fingerprint(name: str = "cifar10") -> str:
    """The content fingerprint of a dataset's decoded arrays (computed once, kept with the array cache)."""
    return load_dataset(name).fingerprint


def load_dataset(name: str = "cifar10") -> Dataset:
    """Load a dataset by name (see DATASETS) or path; decoded once, then read from the array cache."""
    name = check_dataset(name)
    source = data_source(name)
    return _load(name, source, _source_key(source))


def check_dataset(name: str, must_exist: bool = True) -> str:
    """`name` if it is one of DATASETS, else the absolute path of an existing ImageFolder tree or tarball
    (`~` expanded; a relative path is taken from where the user ran, $PWD); anything else is a ValueError that
    says what is accepted. With must_exist False an absolute path is accepted as it is (a stored run's config
    stays readable when its data have moved; loading them fails with this message)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"dataset must be a name or a path, got {name!r}")
    if name in DATASETS:
        return name
    path = Path(name).expanduser()
    if not path.is_absolute():
        path = Path(os.environ.get("PWD") or os.getcwd()) / path
    path = Path(os.path.normpath(path))  # one spelling per folder: "./a/../a//" is "a" (links are kept)
    if Path(name).expanduser().is_absolute() and not must_exist:
        return str(path)
    if _is_tree(path) or _is_tarball(path):
        return str(path)
    raise ValueError(f"dataset {name!r} is neither a known dataset ({', '.join(DATASETS)}) nor an ImageFolder tree "
                     f"(a folder with train/<class>/* and test/<class>/*) or a .tar / .tar.gz of one"
                     + (f"; {path} does not exist" if not path.exists() else f"; {path} is not one of these"))


def data_source(name: str = "cifar10") -> Path:
    """The absolute path the dataset is read from (see the module doc)."""
    name = check_dataset(name)
    if name == "cifar10":
        return _cifar10_source()
    if name in DATASETS:
        return _torchvision_source(name)
    return Path(name)


# --- locating the source -----------------------------------------------------------------------

def _cifar10_source() -> Path:
    env = os.environ.get("SSLGEO_DATA")
    if env:
        path = env_path("SSLGEO_DATA", Path())
        if _is_batches_dir(path / "cifar-10-batches-py"):
            return path / "cifar-10-batches-py"  # the batches folder itself: nothing else beside it is read
        if _is_batches_dir(path) or _is_tree(path) or _is_tarball(path):
            return path
        raise FileNotFoundError(f"SSLGEO_DATA={env} ({path}) is not a CIFAR-10 source. {_OPTIONS}")
    downloaded = cache_dir() / "torchvision"
    if not _is_batches_dir(downloaded / "cifar-10-batches-py"):
        _download(downloaded)
    return downloaded / "cifar-10-batches-py"


_OPTIONS = ("Accepted: set SSLGEO_DATA to (1) torchvision's 'cifar-10-batches-py' folder or its parent, "
            "(2) an ImageFolder tree with train/<class>/* and test/<class>/*, or (3) a .tar or .tar.gz of "
            "such a tree; or (4) leave SSLGEO_DATA unset on a machine with internet access, and torchvision "
            "downloads CIFAR-10 into the cache folder ($SSLGEO_CACHE, default ~/.cache/sslgeo).")


def _download(root: Path) -> None:
    try:
        torchvision.datasets.CIFAR10(str(root), train=True, download=True)
    except Exception as exc:  # network errors come in many types
        raise FileNotFoundError(f"CIFAR-10 was not found and could not be downloaded ({exc}). {_OPTIONS}") from exc


_TORCHVISION = {"cifar100": ("CIFAR100", "cifar-100-python", {"train": True}, ("train", "test", "meta")),
                "stl10": ("STL10", "stl10_binary", {"split": "train"},
                          ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin", "class_names.txt"))}


def _torchvision_source(name: str) -> Path:
    """CIFAR-100 or STL-10, downloaded by torchvision into the cache folder once (where the network allows)."""

    cls, folder, kwargs, files = _TORCHVISION[name]
    root = cache_dir() / "torchvision"
    if not all((root / folder / f).is_file() for f in files):  # a partial download is downloaded again
        try:
            getattr(torchvision.datasets, cls)(str(root), download=True, **kwargs)
        except Exception as exc:  # network errors come in many types
            raise FileNotFoundError(f"{name} was not found in {root} and could not be downloaded ({exc}); offline, "
                                    f"pass an ImageFolder tree or tarball of it by path as the dataset") from exc
    return root / folder


def _is_batches_dir(p: Path) -> bool:
    return p.is_dir() and (p / "data_batch_1").is_file() and (p / "test_batch").is_file()


def _is_tree(p: Path) -> bool:
    return p.is_dir() and all((p / s).is_dir() for s in _SPLITS)


def _is_tarball(p: Path) -> bool:
    return p.is_file() and p.name.endswith((".tar", ".tar.gz", ".tgz"))


# --- decoding, once, into the array cache ------------------------------------------------------

_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def _source_key(source: Path) -> str:
    """Identity of the source's bytes: a tarball's sha256, or every file's path, size and mtime in a folder."""
    if source.is_file():
        st = source.stat()
        return _tarball_key(source, st.st_size, st.st_mtime_ns, st.st_ino)
    files = sorted(os.path.join(d, n) for d, _, names in os.walk(source) for n in names)
    h = hashlib.sha256()
    for f in files:
        st = os.stat(f)
        h.update(f"{os.path.relpath(f, source)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


@functools.lru_cache(maxsize=8)
def _tarball_key(source: Path, size: int, mtime_ns: int, inode: int) -> str:
    """A tarball's sha256, hashed once per process while its size, mtime and inode stay the same."""
    return sha256_file(source)


@functools.lru_cache(maxsize=2)
def _load(name: str, source: Path, key: str) -> Dataset:
    kind = name if name in DATASETS else "folder"
    folder = cache_dir() / f"{kind}-{hashlib.sha256(f'{source}|{key}|{RESOLUTION}'.encode()).hexdigest()[:16]}"
    loaded = _read_cache(folder)
    if loaded is None:
        arrays, classes = _decode(source, kind)
        _write_cache(folder, arrays, {"classes": list(classes), "fingerprint": _fingerprint(arrays),
                                      "source": str(source)})
        loaded = _read_cache(folder)
        if loaded is None:
            raise OSError(f"the decoded-data cache {folder} could not be read back after writing it")
    arrays, manifest = loaded
    return Dataset(name, *arrays, classes=tuple(manifest["classes"]), fingerprint=manifest["fingerprint"])


def _write_cache(folder: Path, arrays, manifest: dict) -> None:
    """Write the arrays and their manifest into a temporary folder, then rename it into place as one unit (a
    damaged folder of the same name is replaced; one that another process just completed is kept)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=TEMP_SUFFIX))
    os.chmod(tmp, 0o777 & ~umask())  # as a plain mkdir would: other users may read a shared cache
    try:
        for n, a in zip(_ARRAYS, arrays):
            np.save(tmp / f"{n}.npy", a, allow_pickle=False)
        write_json(tmp / "MANIFEST.json", manifest)
        if folder.exists() and _read_cache(folder) is None:
            try:  # move the damaged folder aside in one step (a concurrent rebuilder may have done so already)
                os.rename(folder, Path(str(tmp) + ".old"))
            except OSError:
                pass
            shutil.rmtree(Path(str(tmp) + ".old"), ignore_errors=True)
        try:
            os.rename(tmp, folder)
        except OSError:
            if _read_cache(folder) is None:  # not a complete folder from a concurrent writer: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_cache(folder: Path):
    """(arrays, manifest) when the cache folder is complete and its arrays match the manifest's fingerprint;
    else None (and a warning if the folder exists): the caller rebuilds it."""
    if not folder.is_dir():
        return None
    try:
        manifest = json.loads((folder / "MANIFEST.json").read_text())
        if not (isinstance(manifest, dict) and isinstance(manifest.get("classes"), list)
                and isinstance(manifest.get("fingerprint"), str)):
            raise ValueError("MANIFEST.json is not a manifest")
        arrays = [np.load(folder / f"{n}.npy", allow_pickle=False) for n in _ARRAYS]
        if _fingerprint(arrays) != manifest["fingerprint"]:
            raise ValueError("arrays do not match the manifest's fingerprint")
    except (OSError, ValueError, EOFError) as exc:
        warnings.warn(f"decoded-data cache {folder} is incomplete or damaged ({exc}); rebuilding it", stacklevel=4)
        return None
    return arrays, manifest


def _fingerprint(arrays) -> str:
    """sha256 over the decoded arrays (shape, dtype and bytes of each): the data's part of a run's id."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}|{a.dtype}".encode())
        h.update(a.data)
    return h.hexdigest()


def _decode(source: Path, kind: str = "cifar10"):
    balanced = kind == "cifar10"
    if _is_tarball(source):
        return _decode_members(_tar_members(source), source, balanced)
    if _is_tree(source):
        files = ((str(p.relative_to(source)), p.read_bytes) for p in sorted(source.rglob("*")) if p.is_file())
        return _decode_members(files, source, balanced)
    if kind == "cifar100":
        return _decode_cifar100(source)
    if kind == "stl10":
        return _decode_stl10(source)
    batches = source if _is_batches_dir(source) else source / "cifar-10-batches-py"
    return _decode_batches(batches)


class SourceError(ValueError):
    """The data source is truncated, incomplete or holds an undecodable file (the file is named)."""


# Bounds on what an archive may make us read (a small .tar.gz can unpack to anything): an image member larger than
# MAX_IMAGE_BYTES, or image members adding up to more than MAX_ARCHIVE_BYTES, are refused by name. Members that are
# not images of the tree are skipped without being read (streamed past, never held in memory).
MAX_IMAGE_BYTES = 64 * 2**20     # 64 MiB: far above any photograph; a 32 px dataset image is a few KB
MAX_ARCHIVE_BYTES = 16 * 2**30   # 16 GiB of image members in all (ImageNet's training set is about 140 GB)


def _is_tree_image(name: str) -> bool:
    """A member or file that the ImageFolder layout reads: <...>/train|test/<class>/<file> with an image suffix."""
    parts = Path(name).parts
    return len(parts) >= 3 and parts[-3] in _SPLITS and name.lower().endswith(_IMAGE_SUFFIXES)


def _tar_members(path: Path):
    """(name, byte reader) of each image member of the tree, streamed: a member is read only when its reader is
    called (before the next member is reached), other members are skipped unread. A truncated archive, an image
    member over MAX_IMAGE_BYTES or images over MAX_ARCHIVE_BYTES in all raise SourceError naming them."""
    total = 0
    try:
        with tarfile.open(path) as tar:
            for m in tar:
                if not (m.isfile() and _is_tree_image(m.name)):
                    continue
                if m.size > MAX_IMAGE_BYTES:
                    raise SourceError(f"{path}: member {m.name} is {m.size:,} bytes, larger than the "
                                      f"{MAX_IMAGE_BYTES:,} an image may be (data.MAX_IMAGE_BYTES); refused")
                total += m.size
                if total > MAX_ARCHIVE_BYTES:
                    raise SourceError(f"{path}: its image members exceed {MAX_ARCHIVE_BYTES:,} bytes in all "
                                      f"(data.MAX_ARCHIVE_BYTES) at member {m.name}; refused")
                yield m.name, (lambda m=m: _read_member(tar, m, path))
            _check_end_of_archive(tar, path)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise SourceError(f"{path} is truncated or not a readable tar archive ({type(exc).__name__}: {exc})") from None


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> bytes:
    """A member's bytes; an archive that ends inside them is a SourceError that names it (not a raw tar error)."""
    try:
        return tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise SourceError(f"{path} is truncated or not a readable tar archive: member {member.name} cannot be read "
                          f"({type(exc).__name__}: {exc})") from None


def _check_end_of_archive(tar: tarfile.TarFile, path: Path) -> None:
    """A complete tar ends with two zero blocks; one cut at a member boundary reads cleanly without them."""
    tar.fileobj.seek(tar.offset)
    tail = tar.fileobj.read(2 * tarfile.BLOCKSIZE)
    if len(tail) < 2 * tarfile.BLOCKSIZE or any(tail):
        raise SourceError(f"{path} is truncated: the archive ends without its end-of-archive blocks "
                          f"(after {tar.offset:,} bytes of members); copy it again")


# Image modes and how they become 8-bit RGB: the 8-bit modes through PIL's conversion (alpha dropped, palette
# looked up, CMYK and YCbCr converted); 16-bit greyscale ("I;16*", as PIL opens 16-bit PNGs) scaled by 255 / 65535
# and rounded, never clipped; anything else refused by name, among them "I" (32-bit integers of no stated range)
# and "F" (32-bit floats).
EIGHT_BIT_MODES = ("1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr")
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def to_rgb(img: Image.Image) -> Image.Image:
    """`img` as 8-bit RGB with its values kept (see EIGHT_BIT_MODES, SIXTEEN_BIT_MODES); a mode without a defined
    8-bit meaning (32-bit integer "I", 32-bit float "F", LAB, HSV, ...) is a ValueError naming it."""
    if img.mode in EIGHT_BIT_MODES:
        return img.convert("RGB")
    if img.mode in SIXTEEN_BIT_MODES:
        a = np.asarray(img).astype(np.int64)
        grey = ((a * 255 + 32767) // 65535).astype(np.uint8)  # round(v / 257)
        return Image.fromarray(np.repeat(grey[..., None], 3, axis=2))
    raise ValueError(f"image mode {img.mode!r} has no defined 8-bit RGB reading; accepted modes: "
                     f"{', '.join(EIGHT_BIT_MODES + SIXTEEN_BIT_MODES)}")


def _decode_image(read, where: str) -> np.ndarray:
    try:
        return _to_resolution(to_rgb(Image.open(io.BytesIO(read()))))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise SourceError(f"cannot decode image {where}: {exc}") from None


def _to_resolution(img: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8 at RESOLUTION x RESOLUTION: torchvision's Resize(RESOLUTION) (shorter side, bicubic,
    antialiased) then CenterCrop(RESOLUTION); an image already of that size is returned unchanged, bit for bit."""
    if img.size != (RESOLUTION, RESOLUTION):

        img = TF.center_crop(TF.resize(img, RESOLUTION, InterpolationMode.BICUBIC, antialias=True), RESOLUTION)
    return np.asarray(img, dtype=np.uint8)


def _decode_members(members, source: Path, balanced: bool = True):
    """ImageFolder members (relative path, byte reader) -> arrays; classes sorted, as torchvision does.
    `balanced`: every class of a split must have the same number of images (CIFAR-10)."""
    found = {s: [] for s in _SPLITS}
    for name, read in members:
        parts = Path(name).parts
        if _is_tree_image(name):
            img = _decode_image(read, f"{source}: {name}")
            found[parts[-3]].append((parts[-2], parts[-1], img))
    if not all(found.values()):
        raise FileNotFoundError(f"no images under train/<class>/ and test/<class>/ in {source}. {_OPTIONS}")
    classes = sorted({c for c, _, _ in found["train"]})
    _check_complete(found, classes, source, balanced)
    out = []
    for split in _SPLITS:
        items = sorted(found[split], key=lambda t: (classes.index(t[0]), t[1]))
        out += [np.stack([t[2] for t in items]).transpose(0, 3, 1, 2).copy(),
                np.array([classes.index(t[0]) for t in items], dtype=np.int64)]
    return out, classes


def _check_complete(found: dict, classes: list[str], source: Path, balanced: bool = True) -> None:
    """Every split's classes are training classes; if `balanced` (CIFAR-10), each the same number of times."""
    for split, items in found.items():
        counts = {c: 0 for c in classes}
        for c, _, _ in items:
            if c not in counts:
                raise SourceError(f"{source}: {split}/{c}/ is a class that {source}/train/ does not have")
            counts[c] += 1
        if balanced and len(set(counts.values())) > 1:
            short = min(counts, key=counts.get)
            raise SourceError(f"{source} is incomplete: {split}/{short}/ has {counts[short]:,} images where "
                              f"{split}/{max(counts, key=counts.get)}/ has {max(counts.values()):,} "
                              f"(CIFAR-10 is class-balanced); copy the source again")


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles CIFAR-10's batch files, allowing only plain containers and numpy arrays (no code)."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch file")


def _read_batch(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            batch = _ArrayUnpickler(f, encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        if "refusing" in str(exc):
            raise
        raise SourceError(f"{path} is truncated or not a CIFAR batch file ({exc})") from None
    except (EOFError, ValueError, OSError) as exc:
        raise SourceError(f"{path} is truncated or not a CIFAR batch file ({type(exc).__name__}: {exc})") from None
    if not isinstance(batch, dict):
        raise SourceError(f"{path} is not a CIFAR batch file (holds {type(batch).__name__}, not a dict)")
    labels = batch.get("labels", batch.get("fine_labels", ()))  # CIFAR-10 / CIFAR-100
    if "data" in batch and (np.asarray(batch["data"]).ndim != 2 or np.asarray(batch["data"]).shape[1] != 3072
                            or len(batch["data"]) != len(labels)):
        raise SourceError(f"{path} is short or malformed: {np.asarray(batch['data']).shape} pixel rows against "
                          f"{len(labels):,} labels (expected N x 3072 and N labels)")
    return batch


def _decode_batches(folder: Path):
    train = [_read_batch(folder / f"data_batch_{i}") for i in range(1, 6)]
    test = _read_batch(folder / "test_batch")
    meta = _read_batch(folder / "batches.meta")

    def arrays(batches):
        x = np.concatenate([np.asarray(b["data"], dtype=np.uint8) for b in batches]).reshape(-1, 3, 32, 32)
        return x, np.concatenate([np.asarray(b["labels"], dtype=np.int64) for b in batches])

    return [*arrays(train), *arrays([test])], list(meta["label_names"])


def _decode_cifar100(folder: Path):
    """torchvision's cifar-100-python folder (pickled dicts, read by the restricted unpickler): fine labels."""
    train, test, meta = (_read_batch(folder / n) for n in ("train", "test", "meta"))

    def arrays(batch):
        return (np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32),
                np.asarray(batch["fine_labels"], dtype=np.int64))

    return [*arrays(train), *arrays(test)], list(meta["fine_label_names"])


def _decode_stl10(folder: Path):
    """torchvision's stl10_binary folder (raw uint8 files, no pickle): labelled train and test, 96 -> 32 px."""
    classes = (folder / "class_names.txt").read_text().split()
    side = 3 * 96 * 96

    def split(name):
        raw = np.fromfile(folder / f"{name}_X.bin", dtype=np.uint8)
        y = np.fromfile(folder / f"{name}_y.bin", dtype=np.uint8).astype(np.int64) - 1
        if len(raw) % side or len(raw) // side != len(y) or not len(y) or y.min() < 0 or y.max() >= len(classes):
            raise SourceError(f"{folder}/{name}_X.bin and {name}_y.bin are truncated or do not match: {len(raw):,} "
                              f"bytes of images ({side:,} per image) against {len(y):,} labels in 1..{len(classes)}")
        raw = raw.reshape(-1, 3, 96, 96)
        x = np.stack([_to_resolution(Image.fromarray(img.transpose(2, 1, 0))) for img in raw]).transpose(0, 3, 1, 2)
        return x.copy(), y

    return [*split("train"), *split("test")], classes
