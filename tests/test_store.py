import json
from importlib.metadata import version

import numpy as np
import pytest
import torch

from sslgeo_lib import store
from sslgeo_lib.config import RunConfig
from sslgeo_lib.fileio import atomic_write
from sslgeo_lib.runs import load_or_train
from sslgeo_lib.store import list_runs, load_run, run_id

TINY = RunConfig(n_train=256, encoder_width=4, projector_width=16, projector_out=8, epochs=1, batch_size=64,
                 monitor_every=1, strength=0.5)


def test_a_second_call_never_retrains(cifar, isolated_store, monkeypatch):
    run = load_or_train(TINY, progress=False)
    for name in ("config.json", "weights.safetensors", "metrics.json", "provenance.json", "MANIFEST.json"):
        assert (run.path / name).is_file()
    assert not (run.path / "checkpoint.pt").exists()
    assert json.loads((run.path / "config.json").read_text()) == TINY.to_dict()
    assert run.provenance["packages"]["torch"] == version("torch")
    assert run.provenance["device"] == "cpu" and run.metrics["epoch"] == [1]
    monkeypatch.setattr("sslgeo_lib.training.loop.train", lambda *a, **k: pytest.fail("retrained"))
    again = load_or_train(TINY, progress=False)
    assert again.id == run.id and again.metrics == run.metrics


def test_weights_round_trip_without_pickle(cifar, isolated_store):
    run = load_or_train(TINY, progress=False)
    assert (run.path / "weights.safetensors").read_bytes()[:8] != b"\x80\x04\x95"  # not a pickle
    m1, m2 = run.model(), run.model()
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(m1(x)[1], m2(x)[1])
    assert not m1.training


def test_corrupt_entry_is_reported_and_retrained(cifar, isolated_store):
    run = load_or_train(TINY, progress=False)
    weights = run.path / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert load_run(TINY) is None
    with pytest.warns(UserWarning, match="corrupt \\(weights.safetensors does not match its checksum\\); retraining"):
        fixed = load_or_train(TINY, progress=False)
    assert load_run(TINY) is not None and fixed.id == run.id


def test_partial_entry_is_reported_and_retrained(cifar, isolated_store):
    run = load_or_train(TINY, progress=False)
    (run.path / "MANIFEST.json").unlink()
    with pytest.warns(UserWarning, match="partial \\(no MANIFEST.json\\); retraining"):
        load_or_train(TINY, progress=False)
    assert load_run(TINY) is not None


def test_interrupted_training_resumes_from_its_checkpoint(cifar, isolated_store, monkeypatch):
    from sslgeo_lib.training.loop import train

    cfg = TINY.replace(epochs=2)
    train(cfg, isolated_store / run_id(cfg), progress=False, max_epochs=1)  # a run killed after epoch 1
    calls = []

    def counting(*args, **kwargs):
        result = train(*args, **kwargs)
        calls.append(len(result.metrics["epoch"]))
        return result

    monkeypatch.setattr("sslgeo_lib.training.loop.train", counting)
    with pytest.warns(UserWarning, match="partial \\(no MANIFEST.json\\); resuming from its last checkpoint"):
        run = load_or_train(cfg, progress=False)
    assert calls == [2] and run.metrics["epoch"] == [1, 2]


def test_an_unreadable_checkpoint_restarts_training(cifar, tmp_path):
    from sslgeo_lib.training.loop import train

    cfg = TINY.replace(epochs=2)
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="unreadable"):
        result = train(cfg, tmp_path, progress=False)
    assert result.metrics["epoch"] == [1, 2]


def test_run_id_depends_on_config_and_training_code(monkeypatch):
    assert run_id(TINY) == run_id(RunConfig(**TINY.to_dict()))
    assert run_id(TINY) != run_id(TINY.replace(seed=1))
    before = run_id(TINY)
    monkeypatch.setattr(store, "code_hash", lambda modules=None: "changed training code")
    assert run_id(TINY) != before


def test_list_runs_marks_stale_code(cifar, isolated_store, monkeypatch):
    run = load_or_train(TINY, progress=False)
    assert [r["status"] for r in list_runs()] == ["ok"]
    monkeypatch.setattr(store, "code_hash", lambda modules=None: "newer code")
    assert list_runs()[0]["status"] == "ok, trained by other code (kept; clean --other-code or its id removes it)"
    assert list_runs()[0]["id"] == run.id and list_runs()[0]["origin"] == "other code"
    assert store.clean() == [] and store.clean(other_code=True) == [run.id] and list_runs() == []


def test_atomic_write_leaves_nothing_half_written(tmp_path):
    target = tmp_path / "f.bin"
    atomic_write(target, lambda f: f.write(b"old"))

    def broken(f):
        f.write(b"partial")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]


def test_cached_arrays_are_reused_and_keyed_by_settings(cifar, isolated_store):
    run = load_or_train(TINY, progress=False)
    calls = []

    def compute():
        calls.append(1)
        return {"a": np.arange(3.0)}

    first = run.cached("thing", {"k": 1}, compute, ("embed.py",))
    second = run.cached("thing", {"k": 1}, compute, ("embed.py",))
    run.cached("thing", {"k": 2}, compute, ("embed.py",))
    assert len(calls) == 2 and np.array_equal(first["a"], second["a"])


def test_snapshot_epochs():
    from sslgeo_lib.training.loop import snapshot_epochs

    assert ([snapshot_epochs(TINY.replace(epochs=e)) for e in (1, 2, 4, 20, 200)]
            == [[], [1], [1, 2], [5, 10], [50, 100]])


def test_snapshots_are_kept_checked_and_loaded(cifar, isolated_store, tmp_path):
    """A run keeps its weights after 25% and 50% of training, in its manifest; a snapshot equals the weights
    a run stopped at that epoch has (the checkpoint of an interrupted run)."""
    from safetensors.torch import load_file

    from sslgeo_lib.training.loop import train

    cfg = TINY.replace(epochs=4)
    run = load_or_train(cfg, progress=False)
    assert run.epochs == [1, 2, 4] and run.metrics["snapshots"] == [1, 2]
    manifest = json.loads((run.path / "MANIFEST.json").read_text())
    assert {"weights-e1.safetensors", "weights-e2.safetensors"} <= set(manifest)
    stopped = train(cfg, tmp_path / "stopped", progress=False, max_epochs=2)
    for k, v in stopped.model.state_dict().items():
        torch.testing.assert_close(run.at(2).model().state_dict()[k], v.cpu(), rtol=0, atol=0)
    assert run.at(4).id == run.id and run.at(1).id == f"{run.id}@e1"
    with pytest.raises(ValueError, match="has weights after epochs \\[1, 2, 4\\], not after 3"):
        run.at(3)
    first = load_file(run.path / "weights-e1.safetensors")
    assert any(not torch.equal(first[k], v) for k, v in load_file(run.path / "weights.safetensors").items())
    data = bytearray((run.path / "weights-e1.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (run.path / "weights-e1.safetensors").write_bytes(bytes(data))
    assert load_run(cfg) is None  # a damaged snapshot makes the entry corrupt


def test_snapshot_caches_are_keyed_by_epoch(cifar, isolated_store):
    from sslgeo_lib.embed import clean_features

    run = load_or_train(TINY.replace(epochs=2), progress=False)
    early, final = clean_features(run.at(1), "test", 100), clean_features(run, "test", 100)
    assert not np.array_equal(early["h"], final["h"]) and np.array_equal(early["index"], final["index"])


def test_written_files_get_the_mode_of_a_plain_open(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "f.json", lambda f: f.write(b"{}"))
    finally:
        os.umask(old)
    assert (tmp_path / "f.json").stat().st_mode & 0o777 == 0o644  # mkstemp alone would give 0600


def test_a_run_trained_with_other_numerics_is_read_not_retrained(cifar, isolated_store, monkeypatch):
    """A run trained on a cluster's GPUs is named with their numerics; a CPU driver or notebook finds it by its
    config, code and data (here: a CPU entry renamed to its GPU id) instead of training it again."""
    from sslgeo_lib.runs import load_or_train_outcome
    from sslgeo_lib.store import find_entry

    run = load_or_train(TINY, progress=False)
    gpu = isolated_store / run_id(TINY, numbers={"device": "cuda", "precision": "bf16"})
    run.path.rename(gpu)
    assert find_entry(TINY) == gpu and load_run(TINY).path == gpu
    monkeypatch.setattr("sslgeo_lib.training.loop.train", lambda *a, **k: pytest.fail("retrained"))
    out = load_or_train_outcome(TINY, progress=False)
    assert out.action == "stored" and out.run.path == gpu
    gpu.rename(isolated_store / "elsewhere")  # no entry under any numerics: it would train here
    assert find_entry(TINY) is None and load_run(TINY) is None


def test_checkpoint_epoch_reports_only_what_the_training_loop_resumes_from(tmp_path):
    """The epoch a resumed run is reported to start from is the loop's: 0 for a checkpoint it would discard."""
    from sslgeo_lib.runs import checkpoint_epoch

    full = {"model": {}, "opt": {}, "epoch": 3, "metrics": {}}
    simclr, byol = RunConfig(), RunConfig(method="byol")
    cases = {"full": (full, 3, 0), "no-opt": ({k: v for k, v in full.items() if k != "opt"}, 0, 0),
             "with-target": ({**full, "target": {}}, 3, 3)}
    for name, (state, want_simclr, want_byol) in cases.items():
        torch.save(state, tmp_path / name)
        assert (checkpoint_epoch(tmp_path / name, simclr), checkpoint_epoch(tmp_path / name, byol)) == \
            (want_simclr, want_byol), name
    (tmp_path / "garbage").write_bytes(b"not a checkpoint")
    assert checkpoint_epoch(tmp_path / "garbage", simclr) == 0
