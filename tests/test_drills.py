"""Drills against the run store and the data source: clean, kills, races, damaged caches and sources, bad
parameters, unusable stores. Kills and races run real subprocesses; the data is a small generated tree."""
import json
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sslgeo_lib import data, store
from sslgeo_lib.config import RunConfig
from sslgeo_lib.data import SourceError, load_dataset
from sslgeo_lib.fileio import file_lock
from sslgeo_lib.presets import MAX_SWEEP_RUNS, make_preset
from sslgeo_lib.runs import load_or_train
from sslgeo_lib.store import StoreError, check_entry, list_runs, run_id, runs_dir

ROOT = Path(__file__).resolve().parents[1]
TINY = RunConfig(n_train=200, encoder_width=4, projector_width=16, projector_out=8, epochs=1, batch_size=64,
                 monitor_every=1, strength=0.5)


def make_tree(root: Path, n_train: int = 24, n_test: int = 6, n_classes: int = 10, seed: int = 0) -> Path:
    """A class-balanced ImageFolder tree of random 32x32 PNGs."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        for c in range(n_classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i:04d}.png")
    return root


@pytest.fixture
def area(monkeypatch):
    """A work area with its own data tree, cache and store; the environment points at them."""
    root = Path(tempfile.mkdtemp(prefix="sslgeo-drill-"))
    make_tree(root / "tree")
    for name in ("cache", "runs"):
        (root / name).mkdir()
    monkeypatch.setenv("SSLGEO_DATA", str(root / "tree"))
    monkeypatch.setenv("SSLGEO_CACHE", str(root / "cache"))
    monkeypatch.setenv("SSLGEO_RUNS", str(root / "runs"))
    data._load.cache_clear()
    yield root
    data._load.cache_clear()
    subprocess.run(["chmod", "-R", "u+rwX", str(root)], check=False)
    subprocess.run(["rm", "-rf", str(root)], check=False)


def python(code: str, *args, env=None) -> subprocess.Popen:
    """Start `code` in a fresh interpreter with this environment (plus `env`)."""
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out


TRAIN_ONE = """
import json, sys
from pathlib import Path
from sslgeo_lib.config import RunConfig
from sslgeo_lib.training import loop
from sslgeo_lib import runs
import time
real_train = loop.train
def counted(*a, **k):
    with open(sys.argv[2], "a") as f:
        f.write("trained\\n")
    print("training", flush=True)
    deadline = time.time() + 120
    while not Path(sys.argv[3]).exists() and time.time() < deadline:  # hold the lock until released
        time.sleep(0.05)
    return real_train(*a, **k)
loop.train = counted
run = runs.load_or_train(RunConfig(**json.loads(sys.argv[1])), progress=False)
print(run.id)
"""


# --- clean -------------------------------------------------------------------------------------------------

def test_clean_touches_only_runs(area, capsys):
    from sslgeo_lib.cli import main

    root = area / "runs"
    ok = load_or_train(TINY, progress=False)
    other = load_or_train(TINY.replace(seed=1), progress=False)
    (root / ".ssh").mkdir()
    (root / ".ssh" / "id_rsa").write_text("secret")
    (root / "Documents").mkdir()
    outside = area / "elsewhere"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    (root / "link").symlink_to(outside)
    (root / "0123456789abcdef").symlink_to(other.path)  # a symlink with a run's name is not a run either
    (root / "fedcba9876543210").mkdir()  # a run's name but no run inside
    (root / "fedcba9876543210" / "notes.txt").write_text("mine")
    foreign = {".ssh", "Documents", "link", "0123456789abcdef", "fedcba9876543210"}
    rows = {r["id"]: r for r in list_runs()}
    assert {k for k, r in rows.items() if r["kind"] == "foreign"} == foreign
    main(["clean", "--all", "--dry-run"])
    listed = capsys.readouterr().out
    assert "would remove 2 item(s)" in listed and ok.id in listed and other.id in listed
    assert ok.path.is_dir() and other.path.is_dir()
    main(["clean", "--all"])
    assert "removed 2 item(s)" in capsys.readouterr().out
    assert sorted(p.name for p in root.iterdir() if p.name != ".locks") == sorted(foreign)
    assert (root / ".ssh" / "id_rsa").read_text() == "secret" and (outside / "keep.txt").read_text() == "keep"
    assert (root / "fedcba9876543210" / "notes.txt").read_text() == "mine"


def test_clean_keeps_a_colleagues_runs_of_other_code_unless_asked(area, monkeypatch, capsys):
    """Two checkouts whose training code differs (by a comment: another code hash) share one store: `sslgeo clean`
    from either keeps the other's intact runs and says so; --other-code (after --dry-run) or the run's id removes
    them; this checkout's own partial entry is garbage either way."""
    from sslgeo_lib.cli import main

    theirs = load_or_train(TINY, progress=False)
    weights = store.sha256_file(theirs.path / "weights.safetensors")
    monkeypatch.setattr(store, "code_hash", lambda modules=None: "this checkout's training code")
    mine = TINY.replace(seed=1)
    store.start_entry(runs_dir() / run_id(mine), mine)  # interrupted before its first checkpoint: garbage
    (row_theirs,) = [r for r in list_runs() if r["id"] == theirs.id]
    assert row_theirs["origin"] == "other code" and "kept; clean --other-code" in row_theirs["status"]
    main(["clean"])
    out = capsys.readouterr().out
    assert "removed 1 item(s)" in out and run_id(mine) in out and f"{theirs.id}  other code" in out
    assert store.sha256_file(theirs.path / "weights.safetensors") == weights
    main(["clean", "--other-code", "--dry-run"])
    assert "would remove 1 item(s)" in capsys.readouterr().out and theirs.path.is_dir()
    main(["clean", "--other-code"])
    assert not theirs.path.exists()


def test_clean_keeps_runs_of_other_data_and_removes_named_ones(area, monkeypatch, capsys):
    """With SSLGEO_DATA at another dataset, the runs trained on the first are "other data": kept by `clean`,
    removed by --other-data or by naming them; a name that is no run is an error that removes nothing."""
    from sslgeo_lib.cli import main

    first, second = load_or_train(TINY, progress=False), load_or_train(TINY.replace(seed=1), progress=False)
    monkeypatch.setenv("SSLGEO_DATA", str(make_tree(area / "other-tree", seed=7)))
    data._load.cache_clear()
    assert {r["id"]: r["origin"] for r in list_runs()} == {first.id: "other data", second.id: "other data"}
    assert store.clean() == [] and store.clean(other_code=True) == []
    with pytest.raises(SystemExit):
        main(["clean", "0123456789abcdef"])
    assert "no run 0123456789abcdef in the store" in capsys.readouterr().err
    assert store.clean(ids=[first.id]) == [first.id] and second.path.is_dir()
    assert store.clean(other_data=True) == [second.id]


def test_clean_removes_leftovers_of_finished_runs_and_keeps_the_runs(area):
    run = load_or_train(TINY, progress=False)
    old = time.time() - 2 * store.TEMP_AGE
    (run.path / ".weights.safetensors.x1.tmp").write_bytes(b"half")
    (run.path / "cache").mkdir(exist_ok=True)
    (run.path / "cache" / ".features.x2.tmp").write_bytes(b"half")
    for p in (run.path / ".weights.safetensors.x1.tmp", run.path / "cache" / ".features.x2.tmp"):
        os.utime(p, (old, old))
    (run.path / "cache" / ".views.x3.tmp").write_bytes(b"being written now")  # a live writer's file
    (run.path / "checkpoint.pt").write_bytes(b"stale")
    removed = store.clean()
    assert sorted(removed) == sorted(f"{run.id}/{n}" for n in (".weights.safetensors.x1.tmp",
                                                              "cache/.features.x2.tmp", "checkpoint.pt"))
    assert check_entry(run.path, TINY) is None and not (run.path / "checkpoint.pt").exists()
    assert (run.path / "cache" / ".views.x3.tmp").is_file()


def test_clean_keeps_a_resumable_run_and_its_checkpoint(area):
    from sslgeo_lib.training.loop import train

    cfg = TINY.replace(epochs=2)
    store.start_entry(runs_dir() / run_id(cfg), cfg)
    train(cfg, runs_dir() / run_id(cfg), progress=False, max_epochs=1)  # interrupted after epoch 1
    assert store.clean() == [] and (runs_dir() / run_id(cfg) / "checkpoint.pt").is_file()
    assert store.clean(everything=True) == [run_id(cfg)]


def test_clean_keeps_runs_whose_identity_cannot_be_checked(area, monkeypatch):
    run = load_or_train(TINY, progress=False)
    monkeypatch.setenv("SSLGEO_DATA", str(area / "unmounted-disk"))
    data._load.cache_clear()
    (row,) = list_runs()
    assert row["stale"] is None and "identity unchecked" in row["status"]
    assert store.clean(dry_run=True) == [] and store.clean() == []
    assert check_entry(run.path, TINY) is None


def test_a_run_trained_on_another_kind_of_device_is_not_stale(area):
    import shutil

    run = load_or_train(TINY, progress=False)
    gpu_id = run_id(TINY, numbers={"device": "cuda", "precision": "bf16"})
    gpu = runs_dir() / gpu_id
    shutil.copytree(run.path, gpu)
    prov = json.loads((gpu / "provenance.json").read_text()) | {"device": "cuda:0", "precision": "bf16"}
    (gpu / "provenance.json").write_text(json.dumps(prov))
    manifest = json.loads((gpu / "MANIFEST.json").read_text())
    manifest["provenance.json"] = store.sha256_file(gpu / "provenance.json")
    (gpu / "MANIFEST.json").write_text(json.dumps(manifest))
    assert {r["id"]: r["stale"] for r in list_runs()} == {run.id: False, gpu_id: False}
    assert store.clean() == []


def test_an_interrupted_run_of_another_kind_of_machine_is_not_another_codes(area):
    """A GPU run of this code and data, interrupted (a checkpoint, no provenance), seen from a CPU host: its name
    is one of this code's names for the config, so it is this code's run, kept whole by every flag but its id."""
    from sslgeo_lib.training.loop import train

    cfg = TINY.replace(epochs=2)
    gpu = runs_dir() / run_id(cfg, numbers={"device": "cuda", "precision": "bf16"})
    store.start_entry(gpu, cfg)
    train(cfg, gpu, progress=False, max_epochs=1)
    (row,) = list_runs()
    assert row["origin"] == "this" and row["state"] == "resumable"
    assert store.clean(other_code=True, other_data=True) == [] and (gpu / "checkpoint.pt").is_file()


def test_an_unreadable_item_is_reported_and_left_alone(area, monkeypatch):
    run = load_or_train(TINY, progress=False)
    (runs_dir() / "00000000000000ff").mkdir()
    real_is_file = Path.is_file

    def denied(self):
        if self.parent.name == "00000000000000ff":
            raise PermissionError(13, "Permission denied", str(self))
        return real_is_file(self)

    monkeypatch.setattr(Path, "is_file", denied)
    rows = {r["id"]: r["status"] for r in list_runs()}
    assert rows[run.id] == "ok" and rows["00000000000000ff"].startswith("unreadable (PermissionError")
    assert store.clean(everything=True) == [run.id] and (runs_dir() / "00000000000000ff").is_dir()


def test_an_item_in_the_way_of_a_run_is_named_and_kept(area):
    (runs_dir() / run_id(TINY)).mkdir(parents=True)
    (runs_dir() / run_id(TINY) / "thesis.tex").write_text("mine")
    with pytest.warns(UserWarning), pytest.raises(StoreError, match="is in the way of run .* not a run of this store"):
        load_or_train(TINY, progress=False)
    assert (runs_dir() / run_id(TINY) / "thesis.tex").read_text() == "mine"


# --- kills and races (real processes) ----------------------------------------------------------------------

HOLD_AFTER_FIRST_CHECKPOINT = """
import json, sys, time
from sslgeo_lib.config import RunConfig
from sslgeo_lib.training import loop
from sslgeo_lib import runs
real_save = loop._save_checkpoint
def save_then_hang(path, *a, **k):
    real_save(path, *a, **k)
    print("checkpoint", flush=True)
    time.sleep(600)
loop._save_checkpoint = save_then_hang
runs.load_or_train(RunConfig(**json.loads(sys.argv[1])), progress=False)
"""


def test_a_killed_trainer_blocks_nothing_and_its_run_resumes_to_the_same_weights(area, tmp_path, monkeypatch):
    cfg = TINY.replace(epochs=2)
    proc = python(HOLD_AFTER_FIRST_CHECKPOINT, json.dumps(cfg.to_dict()))
    assert proc.stdout.readline().strip() == "checkpoint"  # epoch 1 is saved; the trainer holds the run's lock
    rid = run_id(cfg)
    assert [r["status"] for r in list_runs()] == ["training (running now)"]
    assert store.clean(everything=True) == [] and (runs_dir() / rid / "checkpoint.pt").is_file()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert [r["status"] for r in list_runs()] == ["partial (interrupted; resumes from its checkpoint)"]
    with pytest.warns(UserWarning, match="resuming from its last checkpoint"):
        resumed = load_or_train(cfg, progress=False)  # the dead process's lock does not block
    assert resumed.metrics["epoch"] == [1, 2]
    monkeypatch.setenv("SSLGEO_RUNS", str(tmp_path / "other"))
    straight = load_or_train(cfg, progress=False)
    for k, v in straight.model().state_dict().items():
        torch.testing.assert_close(resumed.model().state_dict()[k], v, rtol=0, atol=0)


def test_two_processes_asking_for_the_same_run_train_it_once(area, tmp_path):
    load_dataset()  # decode once, before the race
    counter = tmp_path / "trained.txt"
    release = tmp_path / "release"
    first = python(TRAIN_ONE, json.dumps(TINY.to_dict()), str(counter), str(release))
    assert first.stdout.readline().strip() == "training"  # the first holds the run's lock now
    second = python(TRAIN_ONE, json.dumps(TINY.to_dict()), str(counter), str(release))
    seen = []
    while not any("is being trained by another process; waiting for it" in line for line in seen):
        line = second.stderr.readline()
        assert line, "".join(seen)  # the second exited without waiting
        seen.append(line)
    release.touch()  # the second is blocked on the lock: let the first train and write the entry
    out2, err2 = second.communicate(timeout=300)
    assert second.returncode == 0, err2
    assert finish(first).strip() == out2.strip() == run_id(TINY)
    assert counter.read_text() == "trained\n"  # one trained; the other waited and loaded its entry
    assert check_entry(runs_dir() / run_id(TINY), TINY) is None
    assert not [p for p in (runs_dir() / run_id(TINY)).iterdir() if p.name.endswith(".tmp")]


# --- malformed entries -------------------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["manifest []", "manifest null", "config null", "weights symlink"])
def test_a_malformed_entry_is_reported_and_blocks_nothing(area, damage):
    run = load_or_train(TINY, progress=False)
    good = load_or_train(TINY.replace(seed=1), progress=False)
    if damage.startswith("manifest"):
        (run.path / "MANIFEST.json").write_text(damage.split()[1])
    elif damage == "config null":
        (run.path / "config.json").write_text("null")
    else:
        target = area / "weights-elsewhere"
        (run.path / "weights.safetensors").rename(target)
        (run.path / "weights.safetensors").symlink_to(target)
    rows = {r["id"]: r["status"] for r in list_runs()}
    assert rows[good.id] == "ok" and rows[run.id].startswith("corrupt")
    with pytest.warns(UserWarning, match="is corrupt .*; retraining it"):
        fixed = load_or_train(TINY, progress=False)
    assert check_entry(fixed.path, TINY) is None and load_or_train(TINY.replace(seed=1), progress=False).id == good.id
    if damage == "weights symlink":
        assert (area / "weights-elsewhere").is_file()  # the link's target is never touched


def test_a_symlink_at_a_runs_name_is_replaced_and_its_target_kept(area):
    outside = area / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    (runs_dir()).mkdir(exist_ok=True)
    (runs_dir() / run_id(TINY)).symlink_to(outside)
    with pytest.warns(UserWarning, match="foreign \\(a symlink"):
        run = load_or_train(TINY, progress=False)
    assert not run.path.is_symlink() and check_entry(run.path, TINY) is None
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]


# --- the data source and its decoded cache -----------------------------------------------------------------

def test_the_same_config_on_two_trees_names_two_runs(area, monkeypatch):
    first = run_id(TINY)
    make_tree(area / "tree2", seed=1)
    monkeypatch.setenv("SSLGEO_DATA", str(area / "tree2"))
    assert run_id(TINY) != first


def test_editing_or_adding_a_member_redecodes(area):
    before = load_dataset()
    img = area / "tree" / "train" / "class3" / "0005.png"
    stat = img.stat()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(img)
    os.utime(area / "tree", ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the top folder looks unchanged
    edited = load_dataset()
    assert edited.fingerprint != before.fingerprint and edited.x_train[3 * 24 + 5].max() == 0
    for c in range(10):  # one more image per class keeps the tree balanced
        Image.fromarray(np.full((32, 32, 3), c, np.uint8)).save(area / "tree" / "train" / f"class{c}" / "9999.png")
    assert len(load_dataset().y_train) == 250


def _tar(tree: Path, path: Path, mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tar:
        tar.add(tree, arcname="cifar")
    return path


def test_a_tar_cut_at_a_member_boundary_is_rejected(area, monkeypatch):
    full = _tar(area / "tree", area / "full.tar")
    with tarfile.open(full) as tar:
        last = tar.getmembers()[-1]
    cut = area / "cut.tar"
    cut.write_bytes(full.read_bytes()[:last.offset])  # every member before `last` is whole
    monkeypatch.setenv("SSLGEO_DATA", str(cut))
    with pytest.raises(SourceError, match=f"{cut} is truncated"):
        load_dataset()


@pytest.mark.parametrize("mode", ["w", "w:gz"])
def test_an_archive_cut_inside_an_image_is_a_named_source_error(area, monkeypatch, mode):
    """Cut in the middle of a member's bytes (not at a header): the reader of that member fails, and that is the
    same named SourceError as any truncation, not a raw tar or gzip error."""
    big = area / "tree" / "train" / "class0" / "0000.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(big)
    full = _tar(area / "tree", area / ("full.tar" + (".gz" if mode == "w:gz" else "")), mode)
    with tarfile.open(full) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("class0/0000.png"))
    raw = full.read_bytes()
    cut_at = member.offset_data + member.size // 2 if mode == "w" else len(raw) // 2
    cut = area / ("cut.tar" + (".gz" if mode == "w:gz" else ""))
    cut.write_bytes(raw[:cut_at])
    monkeypatch.setenv("SSLGEO_DATA", str(cut))
    with pytest.raises(SourceError, match=f"{cut} is truncated"):
        load_dataset()


def test_a_cut_gzip_tar_is_rejected(area, monkeypatch):
    full = _tar(area / "tree", area / "full.tar.gz", "w:gz")
    cut = area / "cut.tar.gz"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    monkeypatch.setenv("SSLGEO_DATA", str(cut))
    with pytest.raises(SourceError, match=f"{cut} is truncated or not a readable tar"):
        load_dataset()


def test_a_short_class_and_an_undecodable_image_are_named(area):
    (area / "tree" / "test" / "class7" / "0002.png").unlink()
    with pytest.raises(SourceError, match="incomplete: test/class7/ has 5 images where test/class0/ has 6"):
        load_dataset()
    (area / "tree" / "test" / "class7" / "0002.png").write_bytes(b"not a png")
    with pytest.raises(SourceError, match="cannot decode image .*test/class7/0002.png"):
        load_dataset()


@pytest.mark.parametrize("damage", ["missing array", "truncated array", "manifest []", "edited array"])
def test_a_damaged_decoded_cache_is_rebuilt(area, damage):
    first = load_dataset()
    (folder,) = [p for p in (area / "cache").iterdir() if p.name.startswith("cifar10-")]
    if damage == "missing array":
        (folder / "x_test.npy").unlink()
    elif damage == "truncated array":
        (folder / "x_train.npy").write_bytes((folder / "x_train.npy").read_bytes()[:1000])
    elif damage == "manifest []":
        (folder / "MANIFEST.json").write_text("[]")
    else:
        x = np.load(folder / "x_train.npy")
        x[0, 0, 0, 0] ^= 1
        np.save(folder / "x_train.npy", x)
    data._load.cache_clear()
    with pytest.warns(UserWarning, match="incomplete or damaged.*rebuilding"):
        again = load_dataset()
    assert again.fingerprint == first.fingerprint and np.array_equal(again.x_train, first.x_train)
    assert [p.name for p in (area / "cache").iterdir()] == [folder.name]  # no temporary folder left


def _encoded(img: Image.Image, fmt: str) -> bytes:
    import io

    out = io.BytesIO()
    img.save(out, fmt)
    return out.getvalue()


def _mode_cases():
    """(mode, encoded bytes, the RGB pixel expected at (0, 0) or None for a refusal): every mode PIL yields."""
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    sixteen = np.full((4, 4), 32768, np.uint16)  # mid-grey of 65535: 32768 / 257 = 127.5 -> 128
    return [
        ("1", _encoded(Image.new("1", (4, 4), 1), "PNG"), (255, 255, 255)),
        ("L", _encoded(Image.new("L", (4, 4), 100), "PNG"), (100, 100, 100)),
        ("LA", _encoded(Image.new("LA", (4, 4), (100, 7)), "PNG"), (100, 100, 100)),  # alpha dropped
        ("P", _encoded(palette, "PNG"), (10, 20, 30)),
        ("RGB", _encoded(Image.new("RGB", (4, 4), (10, 20, 30)), "PNG"), (10, 20, 30)),
        ("RGBA", _encoded(Image.new("RGBA", (4, 4), (10, 20, 30, 40)), "PNG"), (10, 20, 30)),
        ("I;16", _encoded(Image.fromarray(sixteen), "PNG"), (128, 128, 128)),
        ("I", _encoded(Image.fromarray(np.full((4, 4), 100, np.int32), mode="I"), "TIFF"), None),  # no stated range
        ("F", _encoded(Image.new("F", (4, 4), 0.5), "TIFF"), None),
        ("CMYK", _encoded(Image.new("CMYK", (4, 4), (0, 255, 255, 0)), "TIFF"), (255, 0, 0)),
    ]


@pytest.mark.parametrize("mode, encoded, expected", _mode_cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_image_mode_is_decoded_exactly_or_refused_by_name(mode, encoded, expected):
    """Known pixel values through the decoder: a 16-bit mid-grey reads 128 (it read 255, white, when clipped),
    a palette image its palette colour; modes without an 8-bit meaning are refused with the mode named."""
    import io

    assert Image.open(io.BytesIO(encoded)).mode == mode  # what PIL yields for this file
    if expected is None:
        with pytest.raises(SourceError, match=f"cannot decode image here: image mode '{mode}'"):
            data._decode_image(lambda: encoded, "here")
    else:
        out = data._decode_image(lambda: encoded, "here")
        assert out.shape == (32, 32, 3) and out.dtype == np.uint8
        assert set(map(tuple, out.reshape(-1, 3))) == {expected}


BOMB = """
import resource, sys, tarfile
from pathlib import Path
from sslgeo_lib import data
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
names = [name for name, read in data._tar_members(Path(sys.argv[1])) if read()]
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(len(names), (after - before) // 1024)
"""


def test_a_decompression_bomb_is_streamed_past_with_bounded_memory(area):
    """A .tar.gz of a few KB holding a 512 MB member that is not an image (it was read whole into memory): the
    image members are read, the other is streamed past, and the process's peak memory grows by < 64 MB."""
    import io

    bomb = area / "bomb.tar.gz"
    with tarfile.open(bomb, "w:gz", compresslevel=1) as tar:
        tar.add(area / "tree", arcname="cifar")
        info = tarfile.TarInfo("cifar/README.bin")
        info.size = 512 * 2**20

        class Zeros(io.RawIOBase):
            def __init__(self, n):
                self.left = n

            def readable(self):
                return True

            def readinto(self, b):
                k = min(len(b), self.left)
                b[:k] = bytes(k)
                self.left -= k
                return k

        tar.addfile(info, io.BufferedReader(Zeros(info.size), 2**20))
    assert bomb.stat().st_size < 4 * 2**20
    out = subprocess.run([sys.executable, "-c", BOMB, str(bomb)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    n_images, grown_mb = map(int, out.stdout.split())
    assert n_images == 300 and grown_mb < 64, out.stdout


def test_an_oversized_image_member_or_archive_is_refused_by_name(area, monkeypatch):
    archive = _tar(area / "tree", area / "tree.tar")
    monkeypatch.setenv("SSLGEO_DATA", str(archive))
    monkeypatch.setattr(data, "MAX_IMAGE_BYTES", 100)
    with pytest.raises(SourceError, match=r"member cifar/t\w+/class0/0000.png is [\d,]+ bytes, larger than the 100 "
                                          r"an image may be \(data.MAX_IMAGE_BYTES\); refused"):
        load_dataset()
    monkeypatch.setattr(data, "MAX_IMAGE_BYTES", 2**20)
    monkeypatch.setattr(data, "MAX_ARCHIVE_BYTES", 50_000)
    with pytest.raises(SourceError, match=r"image members exceed 50,000 bytes in all \(data.MAX_ARCHIVE_BYTES\)"):
        load_dataset()


def test_n_train_beyond_the_data_is_an_error_before_training(area, monkeypatch):
    monkeypatch.setattr("sslgeo_lib.training.loop.train", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(ValueError, match="n_train=1,000 is larger than the 240 training images"):
        load_or_train(TINY.replace(n_train=1000), progress=False)


# --- impossible work, refused before training -------------------------------------------------------------

def _nothing_stored() -> bool:
    return not runs_dir().exists() or not [p for p in runs_dir().iterdir() if p.name != ".locks"]


def test_a_training_set_smaller_than_two_batches_is_refused_before_training(area):
    """n_train 0 (all 240 images of the tree) at batch 128: it failed with ZeroDivisionError inside the training
    loop and left a partial entry."""
    with pytest.raises(ValueError, match=r"trains on 240 images of .*, fewer than two batches of batch_size=128 "
                                         r"\(256\): use batch_size <= 120"):
        load_or_train(TINY.replace(n_train=0, batch_size=128), progress=False)
    assert _nothing_stored()


def test_a_one_class_dataset_is_refused_before_training(area, monkeypatch):
    """A single-class tree gave C1 a confident "negligible, 0.000 [0.000, 0.000]"."""
    monkeypatch.setenv("SSLGEO_DATA", str(make_tree(area / "one-class", n_train=40, n_classes=1)))
    data._load.cache_clear()
    with pytest.raises(ValueError, match="has 1 class in its training split; .* needs at least 2 classes"):
        load_or_train(TINY.replace(n_train=0, batch_size=8), progress=False)
    assert _nothing_stored()


def test_evaluation_sizes_beyond_the_data_are_refused_before_training(area, monkeypatch):
    from sslgeo_lib.sweep import sweep

    monkeypatch.setattr("sslgeo_lib.training.loop.train", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(ValueError, match="n_test=500 is larger than the 60 images available"):
        sweep(make_preset("smoke", n_train=200, batch_size=64), progress=False)
    with pytest.raises(ValueError, match="n_probe_train=1,000 is larger than the 240 training images"):
        sweep(make_preset("smoke", n_train=200, batch_size=64, n_test=60, n_anchor=20, n_probe_train=1000),
              progress=False)
    assert _nothing_stored()


def test_a_gpu_preset_without_a_gpu_is_refused_unless_allowed(area, monkeypatch, capsys):
    """`sslgeo train --preset gpu` on a CPU-only machine started 81 ResNet-18 runs without a word."""
    from sslgeo_lib.cli import main
    from sslgeo_lib.sweep import check_preset

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("SSLGEO_ALLOW_CPU", raising=False)
    monkeypatch.setattr("sslgeo_lib.training.loop.train", lambda *a, **k: pytest.fail("trained"))
    for preset in ("gpu", "gpu-lite"):
        with pytest.raises(SystemExit) as exit_:
            main(["train", "--preset", preset, "--quiet"])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and f"preset {preset} trains ResNet-18" in err
        assert "--preset cpu" in err and "gpu-lite" in err and "--allow-cpu" in err
    assert _nothing_stored()
    check_preset(make_preset("gpu", n_test=60, n_anchor=20, n_id=0, n_probe_train=0), allow_cpu=True)  # the override
    from sslgeo_lib import executor
    from sslgeo_lib.sweep import sweep

    class Submitted(Exception):
        pass

    def submitted(*a, **k):
        raise Submitted

    monkeypatch.setattr(executor, "train_on_ray", submitted)  # Ray's workers bring their own GPUs: no refusal here
    small = make_preset("gpu", batch_size=64, n_test=60, n_anchor=20, n_id=0, n_probe_train=0, strengths=[1.0],
                        seeds=[0])
    with pytest.raises(Submitted):
        sweep(small, progress=False, executor="ray")
    monkeypatch.setenv("SSLGEO_ALLOW_CPU", "1")
    check_preset(make_preset("gpu", n_test=60, n_anchor=20, n_id=0, n_probe_train=0))


def test_ctrl_c_during_training_prints_one_line_and_the_run_resumes(cifar, isolated_store):
    """SIGINT while `sslgeo train` trains: one line that says the run resumes, no traceback, exit 130."""
    env = {**os.environ, "SSLGEO_PRESET": "smoke", "SSLGEO_JOBS": "1"}  # one run at a time (two: the next test)
    # SIGINT as a terminal delivers it: a job started in the background (as CI is) inherits SIGINT ignored, and
    # Python then leaves it ignored
    proc = subprocess.Popen([sys.executable, "-m", "sslgeo_lib.cli", "train", "--preset", "smoke", "--main-only",
                             "--quiet", "--epochs", "50"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while not list(runs_dir().glob("*/checkpoint.pt")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert "sslgeo: interrupted. A run stopped mid-training resumes from its last checkpoint" in err
    assert [r["state"] for r in list_runs()] == ["resumable"]


def test_ctrl_c_stops_runs_training_side_by_side_and_each_resumes(cifar, isolated_store):
    """Ctrl-C at a terminal (SIGINT to the whole process group) while two runs train in two worker processes: the
    command exits 130 with its one line, no worker outlives it, and both runs are left resumable."""
    env = {**os.environ, "SSLGEO_PRESET": "smoke", "SSLGEO_JOBS": "2"}

    def own_group():
        os.setpgrp()
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    proc = subprocess.Popen([sys.executable, "-m", "sslgeo_lib.cli", "train", "--preset", "smoke", "--main-only",
                             "--quiet", "--epochs", "50"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=own_group)
    try:
        deadline = time.monotonic() + 180
        while len(list(runs_dir().glob("*/checkpoint.pt"))) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    survivors = True
    deadline = time.monotonic() + 15  # multiprocessing's resource tracker leaves when the last worker has
    while survivors and time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
            time.sleep(0.2)
        except ProcessLookupError:
            survivors = False
    if survivors:
        os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130 and "sslgeo: interrupted" in err, err
    assert not survivors, "a worker outlived the interrupted command by 15 s"
    assert [r["state"] for r in list_runs()] == ["resumable", "resumable"]


def test_read_glue_refuses_a_notebook_without_outputs(tmp_path):
    import nbformat

    from sslgeo_lib.report import read_glue

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("glue('x', 1)")])
    nbformat.write(nb, tmp_path / "copy.ipynb")
    with pytest.raises(ValueError, match="copy.ipynb holds no outputs .* so it has no glued values"):
        read_glue(tmp_path / "copy.ipynb")


# --- parameters --------------------------------------------------------------------------------------------

def test_a_misspelt_notebook_parameter_stops_the_notebook(area, tmp_path):
    import papermill

    with pytest.raises(papermill.PapermillExecutionError) as err:
        papermill.execute_notebook(str(ROOT / "book" / "c2_invariance.ipynb"), str(tmp_path / "out.ipynb"),
                                   parameters={"preset": "smoke", "strenghts": "[0.5]"}, cwd=str(ROOT / "book"),
                                   progress_bar=False, kernel_name="python3")
    assert "unknown parameter 'strenghts'" in str(err.value) and "did you mean 'strengths'" in str(err.value)
    assert "n_views" in str(err.value)  # the accepted names are listed
    assert list_runs() == []  # nothing trained


@pytest.mark.parametrize("params,message", [
    ({"n_test": -5}, "n_test must be >= 0"), ({"n_views": 0}, "n_views must be >= 1"),
    ({"seeds": [2**62]}, "seeds must lie in \\[0, 2147483647\\]"), ({"epochs": 0}, "epochs must be > 0"),
    ({"n_anchor": 900, "n_test": 500}, "n_anchor=900 is larger than n_test=500"),
    ({"seeds": list(range(10_000))}, f"20,000 runs .* more than MAX_SWEEP_RUNS = {MAX_SWEEP_RUNS}.*allow_large_sweep"),
])
def test_bad_numbers_fail_before_training_naming_the_parameter(params, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make_preset("smoke", **params)


def test_a_large_sweep_runs_when_asked_for():
    assert len(make_preset("smoke", seeds=list(range(10_000)), allow_large_sweep="True").configs()) == 20_000


def test_a_test_size_beyond_the_data_fails_before_any_training(area, monkeypatch):
    from sslgeo_lib.sweep import sweep

    monkeypatch.setattr("sslgeo_lib.training.loop.train", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(ValueError, match="n_test=500 is larger than the 60 images"):
        sweep(make_preset("smoke", n_train=0, n_test=500, n_anchor=10, n_id=0))


# --- the environment ---------------------------------------------------------------------------------------

def test_a_store_path_that_is_a_file_is_one_line_before_training(area):
    (area / "store-file").write_text("")
    proc = subprocess.run([sys.executable, "-m", "sslgeo_lib.cli", "train", "--preset", "smoke", "--quiet"],
                          cwd=ROOT, env={**os.environ, "SSLGEO_RUNS": str(area / "store-file")},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[1:] == [
        f"sslgeo: error: the run store {area / 'store-file'} (SSLGEO_RUNS) is a file, not a folder; point "
        "SSLGEO_RUNS at a folder (it is created if missing)"]


def test_a_full_disk_fails_before_training(area, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 10**6, 10**6))
    monkeypatch.setattr("sslgeo_lib.training.loop.train", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(StoreError, match="has 1 MB free; training a run needs about 17 MB"):
        load_or_train(TINY, progress=False)


READ_ONLY = """
import json, sys
from sslgeo_lib.config import RunConfig
from sslgeo_lib.embed import clean_features
from sslgeo_lib.store import load_run, StoreError
from sslgeo_lib.runs import load_or_train
cfg = RunConfig(**json.loads(sys.argv[1]))
run = load_or_train(cfg, progress=False)  # stored: read without writing anything
print(run.cache_folder())
run.cached("probe", {"k": 1}, lambda: {"a": __import__("numpy").arange(3.0)}, ("embed.py",))
try:
    load_or_train(cfg.replace(seed=5), progress=False)
except StoreError as exc:
    print("refused:", exc)
from sslgeo_lib.store import list_runs
print([row["state"] for row in list_runs()])  # its locks are opened read-only: nothing reported unreadable
"""


def read_only_python(code: str, *args, store: Path) -> subprocess.Popen:
    """Run `code` with `store` read-only for it: by permission bits for a normal user; for root (who writes
    through permission bits) by a read-only bind mount in a private mount namespace of the child alone."""
    if os.geteuid() != 0:
        for d, _, _ in os.walk(store):
            os.chmod(d, 0o555)
        return python(code, *args)
    if subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode != 0:
        pytest.skip("running as root without the right to make a private read-only mount")
    remount = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    return subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", remount, str(store),
                             sys.executable, "-c", code, *args], cwd=ROOT, env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_read_only_store_is_analysed_and_never_trained_into(area):
    run = load_or_train(TINY, progress=False)
    out = finish(read_only_python(READ_ONLY, json.dumps(TINY.to_dict()), store=area / "runs")).splitlines()
    assert out[0] == str(area / "cache" / "derived" / run.id)
    assert out[1].startswith(f"refused: the run store {area / 'runs'} (SSLGEO_RUNS) is not writable")
    assert out[2] == "['ok']"
    assert [p.name for p in (area / "cache" / "derived" / run.id).iterdir()][0].startswith("probe-")
    assert sorted(p.name for p in run.path.iterdir()) == sorted(["MANIFEST.json", "config.json", "metrics.json",
                                                                 "provenance.json", "weights.safetensors"])


def test_relative_paths_are_taken_from_where_the_user_ran(area):
    code = ("from sslgeo_lib.store import runs_dir; from sslgeo_lib.data import cache_dir, data_source; "
            "print(runs_dir()); print(cache_dir()); print(data_source())")
    env = {"PWD": str(area), "SSLGEO_RUNS": "runs", "SSLGEO_CACHE": "cache", "SSLGEO_DATA": "tree"}
    proc = python(code, env=env)  # the process runs in the repository, as a notebook kernel runs in book/
    assert finish(proc).split() == [str(area / "runs"), str(area / "cache"), str(area / "tree")]


def test_provenance_records_the_data_and_its_absolute_source(area):
    run = load_or_train(TINY, progress=False)
    assert run.provenance["data"] == {"dataset": "cifar10", "source": str(area / "tree"),
                                      "fingerprint": load_dataset().fingerprint}
    assert run.provenance["threads"] == 2


def test_a_lock_held_by_a_live_process_is_busy_and_released_by_its_death(area):
    lock = runs_dir() / ".locks" / "x.lock"
    holder = python(f"from sslgeo_lib.fileio import file_lock\nimport time\n"
                    f"with file_lock({str(lock)!r}):\n    print('held', flush=True); time.sleep(600)")
    assert holder.stdout.readline().strip() == "held"
    from sslgeo_lib.fileio import Busy

    with pytest.raises(Busy):
        with file_lock(lock, blocking=False):
            pass
    holder.kill()
    holder.wait()
    t0 = time.perf_counter()
    with file_lock(lock, blocking=False):
        assert time.perf_counter() - t0 < 1


def test_a_diverged_run_is_refused_and_not_stored(area):
    """A run whose loss becomes NaN (VICReg at an absurd learning rate) is an error naming it, and leaves no entry:
    a NaN run must never pass as complete and be analysed."""
    cfg = TINY.replace(method="vicreg", lr=1e4)
    with pytest.raises(FloatingPointError, match=r"diverged: the training loss was not finite in epoch 1 "
                                                 r"\(lr=10000, method vicreg\); nothing was stored"):
        load_or_train(cfg, progress=False)
    assert not (runs_dir() / run_id(cfg)).exists() and store.load_run(cfg) is None
