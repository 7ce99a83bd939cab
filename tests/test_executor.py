"""The local executor: how many runs train at once, and that training side by side gives the same weights."""
import pytest
from safetensors.torch import load_file

from sslgeo_lib import executor
from sslgeo_lib.config import RunConfig
from sslgeo_lib.executor import resolve_jobs, train_locally, train_runs

TINY = RunConfig(n_train=256, encoder_width=4, projector_width=16, projector_out=8, epochs=1, batch_size=64,
                 monitor_every=1, strength=0.5)


def test_jobs_default_to_half_the_cores_and_obey_the_override(monkeypatch):
    monkeypatch.delenv("SSLGEO_JOBS", raising=False)
    for cores, jobs in ((1, 1), (2, 1), (3, 1), (8, 4), (16, 8)):
        monkeypatch.setattr(executor, "available_cores", lambda cores=cores: cores)
        assert resolve_jobs() == jobs
    monkeypatch.setenv("SSLGEO_JOBS", "3")
    assert resolve_jobs() == 3 and resolve_jobs(5) == 5  # the argument before the variable


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5", " "])
def test_a_bad_number_of_jobs_says_what_is_accepted(monkeypatch, value):
    monkeypatch.setenv("SSLGEO_JOBS", value)
    if not value.strip():
        assert resolve_jobs() >= 1  # empty: unset
        return
    with pytest.raises(ValueError, match=r"SSLGEO_JOBS=.*accepted: a whole number >= 1"):
        resolve_jobs()
    with pytest.raises(ValueError, match=r"jobs=0 .*accepted"):
        resolve_jobs(0)


def _weights(runs):
    return [load_file(r.path / "weights.safetensors") for r in runs]


def test_two_workers_give_the_same_weights_as_one(cifar, tmp_path, monkeypatch):
    """Two runs trained side by side in two worker processes equal the same runs trained one after another here,
    bit for bit, and come back in the order given."""
    configs = [TINY, TINY.replace(seed=1, strength=1.0)]
    monkeypatch.setenv("SSLGEO_RUNS", str(tmp_path / "one"))
    alone = list(train_locally(configs, progress=False, jobs=1).values())
    monkeypatch.setenv("SSLGEO_RUNS", str(tmp_path / "two"))
    together = train_locally(configs, progress=False, jobs=2)
    assert list(together) == configs
    together = list(together.values())
    assert [r.id for r in together] == [r.id for r in alone]
    assert all(r.path.parent == tmp_path / "two" for r in together)
    for a, b in zip(_weights(alone), _weights(together)):
        assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    assert alone[0].metrics["loss"] == together[0].metrics["loss"]
    # stored now: train_runs loads them here, starting no worker and training nothing
    monkeypatch.setattr("sslgeo_lib.training.loop.train", lambda *a, **k: pytest.fail("retrained"))
    monkeypatch.setattr(executor, "ProcessPoolExecutor", lambda *a, **k: pytest.fail("started workers"))
    assert [r.id for r in train_runs(configs, "local", progress=False, jobs=2).values()] == [r.id for r in alone]


def test_a_failing_run_in_a_worker_raises_its_error(cifar, isolated_store):
    bad = TINY.replace(n_train=60_000)  # more images than CIFAR-10 has: refused in the worker, before training
    with pytest.raises(ValueError, match="larger than the 50,000 training images") as info:
        train_locally([TINY.replace(seed=3), bad], progress=False, jobs=2)
    assert any("in run s=0.5 seed=0" in note and "stopped" in note for note in info.value.__notes__)
