"""The Ray executor against a real Ray cluster that these tests start (on 127.0.0.1, 4 logical CPUs, no GPU) and
stop: runs trained by Ray workers are bit-identical to local training; a worker killed mid-run (SIGKILL) is
reported, retried, and resumes from its checkpoint to the same weights; two drivers submitting the same sweep at
once train each run once. Drivers run as separate processes, as users run them."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from sslgeo_lib.config import RunConfig
from sslgeo_lib.executor import resolve_executor
from sslgeo_lib.fileio import sha256_file
from sslgeo_lib.store import lock_path, run_id
from sslgeo_lib.sweep import get_or_train

pytestmark = pytest.mark.slow
SMALL = dict(n_train=256, encoder_width=4, projector_width=16, projector_out=8, batch_size=64, monitor_every=1)
DRIVER = """
import json, sys
from sslgeo_lib.config import RunConfig
from sslgeo_lib.executor import train_on_ray
configs = [RunConfig(**c) for c in json.loads(sys.argv[1])]
out = train_on_ray(configs, address=sys.argv[2], progress=False)
print("OUTCOMES " + json.dumps([dict(id=o.path.name, action=o.action, from_epoch=o.from_epoch, attempts=o.attempts)
                                for o in out.values()]))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _processes_mentioning(text: str) -> list[int]:
    """Processes whose command line names `text`, and all their descendants (Ray's workers retitle themselves)."""
    found, children = set(), {}
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(proc.name))
            if text.encode() in (proc / "cmdline").read_bytes():
                found.add(int(proc.name))
        except (OSError, ValueError, IndexError):
            pass
    todo = list(found)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return sorted(found)


@pytest.fixture(scope="module")
def cluster(cifar):
    """A Ray head on 127.0.0.1 with its own temporary folder; stopped by killing its processes and their children
    (never another Ray on this machine), and its folder removed."""
    tmp = tempfile.mkdtemp(prefix="sslgeo-ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    address = f"127.0.0.1:{_free_port()}"
    ray = str(Path(sys.executable).parent / "ray")
    try:
        subprocess.run([ray, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={address.split(':')[1]}",
                        "--num-cpus=4", "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats",
                        f"--temp-dir={tmp}"], check=True, capture_output=True, timeout=120)
        yield address
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in _processes_mentioning(tmp):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            time.sleep(2)
        shutil.rmtree(tmp, ignore_errors=True)


def _drive(configs, address, store: Path, **popen):
    env = {**os.environ, "SSLGEO_RUNS": str(store)}
    return subprocess.Popen([sys.executable, "-c", DRIVER, json.dumps([c.to_dict() for c in configs]), address],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def _outcomes(proc, timeout=600):
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:  # a failed or timed-out check leaves no driver running
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    line = next(ln for ln in out.splitlines() if ln.startswith("OUTCOMES "))
    return json.loads(line.removeprefix("OUTCOMES ")), err


def _local(cfg, store: Path, monkeypatch):
    monkeypatch.setenv("SSLGEO_RUNS", str(store))
    return get_or_train(cfg, progress=False)


def test_ray_runs_equal_local_runs_bit_for_bit(cluster, tmp_path, monkeypatch):
    configs = [RunConfig(**SMALL, epochs=2, strength=s) for s in (0.0, 1.0)]
    outcomes, _ = _outcomes(_drive(configs, cluster, tmp_path / "ray"))
    assert [o["action"] for o in outcomes] == ["trained", "trained"]
    for cfg, o in zip(configs, outcomes):
        local = _local(cfg, tmp_path / "local", monkeypatch)
        assert o["id"] == local.id == run_id(cfg)
        ray_dir = tmp_path / "ray" / o["id"]
        assert sha256_file(ray_dir / "weights.safetensors") == sha256_file(local.path / "weights.safetensors")
        assert json.loads((ray_dir / "metrics.json").read_text())["loss"] == local.metrics["loss"]
    again, _ = _outcomes(_drive(configs, cluster, tmp_path / "ray"))  # a second submission trains nothing
    assert [o["action"] for o in again] == ["stored", "stored"]


def test_a_killed_worker_is_retried_and_resumes_to_the_same_weights(cluster, tmp_path, monkeypatch):
    cfg = RunConfig(**{**SMALL, "n_train": 1000, "encoder_width": 8}, epochs=24, strength=0.5)
    store = tmp_path / "ray"
    monkeypatch.setenv("SSLGEO_RUNS", str(store))
    run, lock = store / run_id(cfg), lock_path(run_id(cfg))
    driver = _drive([cfg], cluster, store)
    try:
        deadline = time.monotonic() + 300
        while not (run / "checkpoint.pt").is_file():  # the worker has finished at least one epoch
            assert driver.poll() is None and time.monotonic() < deadline, "the run never started"
            time.sleep(0.05)
        holders = _processes_holding(lock)
        assert len(holders) == 1, holders  # the one worker training it (it holds the run's lock)
        os.kill(holders[0], signal.SIGKILL)
    except BaseException:
        driver.kill()
        raise
    (outcome,), err = _outcomes(driver)
    assert f"run {run.name} s=0.5 seed=0 depth=2 width=16 failed on attempt 1" in err and "retrying from its checkpoint" in err
    assert outcome["attempts"] == 2 and outcome["action"] == "resumed"
    assert 1 <= outcome["from_epoch"] < cfg.epochs
    local = _local(cfg, tmp_path / "local", monkeypatch)
    assert sha256_file(run / "weights.safetensors") == sha256_file(local.path / "weights.safetensors")
    assert not (run / "checkpoint.pt").exists()


def _processes_holding(path: Path) -> list[int]:
    """Processes with `path` open (the holder of a run's lock keeps its descriptor open while it trains)."""
    target, pids = str(Path(path).resolve()), []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if any(os.readlink(fd) == target for fd in (proc / "fd").iterdir()):
                pids.append(int(proc.name))
        except OSError:
            pass
    return pids


def test_two_drivers_at_once_train_each_run_once(cluster, tmp_path):
    cfg = RunConfig(**{**SMALL, "n_train": 1000, "encoder_width": 8}, epochs=16, strength=1.0)
    store = tmp_path / "ray"
    first, second = _drive([cfg], cluster, store), _drive([cfg], cluster, store)
    try:
        ((a,), err_a), ((b,), err_b) = _outcomes(first), _outcomes(second)
    finally:
        second.kill()
    # both tasks started while the run trained (it takes far longer than a worker's start): one trained it, the
    # other waited on the run's lock and loaded what the first wrote
    assert a["id"] == b["id"] and sorted([a["action"], b["action"]]) == ["loaded", "trained"]
    assert "is being trained by another process; waiting for it" in err_a + err_b
    assert [p.name for p in store.iterdir() if not p.name.startswith(".")] == [a["id"]]


def test_a_run_that_cannot_train_is_reported_once_not_retried(cluster, tmp_path):
    cfg = RunConfig(**{**SMALL, "n_train": 60_000}, epochs=1, strength=1.0)  # CIFAR-10 has 50,000 training images
    proc = _drive([cfg], cluster, tmp_path / "ray")
    _, err = proc.communicate(timeout=600)
    assert proc.returncode != 0 and "n_train=60,000 is larger than the 50,000 training images" in err
    assert "FAILED on attempt 1 of 3" in err and "retrying" not in err
    assert "SweepError: 1 run(s) failed" in err


def test_executor_choice_and_its_errors(monkeypatch):
    monkeypatch.delenv("SSLGEO_EXECUTOR", raising=False)
    assert resolve_executor() == "local" and resolve_executor("ray") == "ray"
    monkeypatch.setenv("SSLGEO_EXECUTOR", "ray")
    assert resolve_executor() == "ray"
    monkeypatch.setenv("SSLGEO_EXECUTOR", "dask")
    with pytest.raises(ValueError, match="SSLGEO_EXECUTOR='dask' is unknown; accepted: local, ray"):
        resolve_executor()


def test_notebooks_sweep_sends_only_missing_runs_to_the_ray_executor(cifar, isolated_store, monkeypatch):
    """SSLGEO_EXECUTOR=ray makes `sweep` (what every notebook calls) hand the missing runs, and only those, to
    the Ray executor, and return the entries it reports (here a stand-in that trains in this process)."""
    import sslgeo_lib.executor as executor
    from sslgeo_lib.presets import make_preset
    from sslgeo_lib.sweep import sweep, train_or_load

    calls = []

    def fake_train_on_ray(configs, address=None, progress=True):
        calls.append((list(configs), address))
        return {c: executor.RayOutcome(train_or_load(c, progress=False).run.path, "trained", 0, 1, "here", 0.0)
                for c in configs}

    monkeypatch.setattr(executor, "train_on_ray", fake_train_on_ray)
    monkeypatch.setenv("SSLGEO_EXECUTOR", "ray")
    p = make_preset("smoke", strengths=[0.0, 1.0], seeds=[0], n_train=256, epochs=1, encoder_width=4)
    get_or_train(p.configs()[0], progress=False)  # one of the two is stored already
    runs = sweep(p, progress=False, address="10.0.0.1:6379")
    assert calls == [([p.configs()[1]], "10.0.0.1:6379")]
    assert [r.config for r in runs] == p.configs() and all(r.path.parent == isolated_store for r in runs)
    assert sweep(p, progress=False) and len(calls) == 1  # everything stored: Ray is not called
