"""The Ray executor against a real Ray cluster that these tests start (on 127.0.0.1, 4 logical CPUs, no GPU) and
stop: runs trained by Ray workers are bit-identical to local training; a worker killed mid-run (SIGKILL) is
reported, retried, and resumes from its checkpoint to the same weights; two drivers submitting the same sweep at
once train each run once. Drivers run as separate processes, as users run them."""
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from sslgeo_lib.config import RunConfig
from sslgeo_lib.executor import resolve_executor
from sslgeo_lib.fileio import sha256_file
from sslgeo_lib.runs import load_or_train
from sslgeo_lib.store import lock_path, run_id

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


@dataclass(frozen=True)
class Cluster:
    address: str
    env: dict  # what the head and every driver run with


def isolated_ray_env(home: Path) -> dict:
    """An environment that no Ray state of the user's can reach: HOME is `home` (with a stray, wrong
    ~/.ray/auth_token in it, as a local Ray run by an older version leaves), token authentication with a token
    of its own (in the environment, which Ray reads before any token file), every address on 127.0.0.1 (Ray's
    switch for single-machine instances), the decoded-data cache where this process has it."""
    from sslgeo_lib.data import cache_dir
    from sslgeo_lib.executor import PRIVATE_INSTANCE_ENV

    (home / ".ray").mkdir(parents=True, exist_ok=True)
    (home / ".ray" / "auth_token").write_text(secrets.token_hex(32))  # stray: not the cluster's token
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH")}
    return {**env, **PRIVATE_INSTANCE_ENV, "HOME": str(home), "SSLGEO_CACHE": str(cache_dir()),
            "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}


@pytest.fixture(scope="module")
def cluster(cifar):
    """A Ray head on 127.0.0.1 with its own temporary folder, HOME and token (`isolated_ray_env`: the drills pass
    whatever the user's ~/.ray holds); stopped by killing its processes and their children (never another Ray on
    this machine), and its folder removed."""
    tmp = tempfile.mkdtemp(prefix="sslgeo-ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    env = isolated_ray_env(Path(tmp) / "home")
    address = f"127.0.0.1:{_free_port()}"
    ray = str(Path(sys.executable).parent / "ray")
    try:
        subprocess.run([ray, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={address.split(':')[1]}",
                        "--num-cpus=4", "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats",
                        f"--temp-dir={tmp}/ray"], check=True, capture_output=True, timeout=120, env=env)
        yield Cluster(address, env)
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in _processes_mentioning(tmp):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            time.sleep(2)
        shutil.rmtree(tmp, ignore_errors=True)


def _drive(configs, cluster: Cluster, store: Path, **popen):
    env = {**cluster.env, "SSLGEO_RUNS": str(store)}
    return subprocess.Popen([sys.executable, "-c", DRIVER, json.dumps([c.to_dict() for c in configs]),
                             cluster.address],
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
    return load_or_train(cfg, progress=False)


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
    cfg = RunConfig(**{**SMALL, "n_train": 1000, "encoder_width": 8}, epochs=12, strength=0.5)  # killed after epoch 1
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
    assert f"run {run.name} s=0.5 seed=0 depth=2 width=16 failed on attempt 1" in err
    assert "retrying from its checkpoint" in err
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


LOCAL_DRIVER = """
import json, os, sys
import ray
from sslgeo_lib.config import RunConfig
from sslgeo_lib.executor import ray_connection, train_on_ray
watched = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
before = {k: os.environ.get(k) for k in watched}
with ray_connection() as temp_dir:
    seen = dict(temp_dir=temp_dir, nodes=[n["NodeManagerAddress"] for n in ray.nodes()],
                mode=os.environ.get("RAY_AUTH_MODE"))
    (out,) = train_on_ray([RunConfig(**json.loads(sys.argv[1]))], progress=False).values()
restored = before == {k: os.environ.get(k) for k in watched}
print("LOCAL " + json.dumps(dict(seen, action=out.action, env_restored=restored)))
"""


@pytest.mark.parametrize("stray_token", [False, True])
def test_a_private_local_instance_leaves_nothing_behind(cifar, tmp_path, stray_token):
    """The executor's own Ray instance (no address): bound to 127.0.0.1, token authentication with a token kept
    in memory, and afterwards the user's HOME (empty, or holding a stray ~/.ray/auth_token) byte for byte as it
    was, the instance's folder gone and the environment restored."""
    from sslgeo_lib.data import cache_dir

    home = tmp_path / "home"
    home.mkdir()
    if stray_token:
        (home / ".ray").mkdir()
        (home / ".ray" / "auth_token").write_text("stray")
    snapshot = lambda: {str(f.relative_to(home)): f.read_bytes() for f in home.rglob("*") if f.is_file()}  # noqa: E731
    before = snapshot()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env |= {"HOME": str(home), "SSLGEO_CACHE": str(cache_dir()), "SSLGEO_RUNS": str(tmp_path / "runs")}
    cfg = RunConfig(**SMALL, epochs=1, strength=1.0)
    proc = subprocess.run([sys.executable, "-c", LOCAL_DRIVER, json.dumps(cfg.to_dict())], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith("LOCAL ")).removeprefix("LOCAL "))
    assert seen["action"] == "trained" and seen["nodes"] == ["127.0.0.1"] and seen["mode"] == "token"
    assert seen["env_restored"] and not Path(seen["temp_dir"]).exists()
    assert snapshot() == before and sorted(p.name for p in home.iterdir()) == ([".ray"] if stray_token else [])


def test_a_wrong_address_fails_within_30_seconds_and_names_it(cifar, isolated_store, capsys):
    """`sslgeo train --executor ray --address 127.0.0.1:<a port nobody listens on>`: exit 2 with a message that
    names the address and how to start a cluster, well within 30 s (Ray alone retried for minutes)."""
    from sslgeo_lib.cli import main

    address = f"127.0.0.1:{_free_port()}"
    t0 = time.monotonic()
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--preset", "smoke", "--main-only", "--quiet", "--executor", "ray", "--address", address])
    assert exit_.value.code == 2 and time.monotonic() - t0 < 30
    err = capsys.readouterr().err
    assert f"no Ray cluster answers at {address}" in err and "ray start --head" in err
    assert not isolated_store.exists() or not [p for p in isolated_store.iterdir() if p.name != ".locks"]


def test_check_reachable_leaves_rays_own_words_to_ray(monkeypatch):
    from sslgeo_lib.executor import SweepError, check_reachable

    for address in ("auto", "ray://10.0.0.1:10001"):
        check_reachable(address)  # no probe: Ray resolves these
    with pytest.raises(SweepError, match="is not HOST:PORT"):
        check_reachable("nowhere")


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
    from sslgeo_lib.runs import load_or_train_outcome
    from sslgeo_lib.sweep import sweep

    calls = []

    def fake_train_on_ray(configs, address=None, progress=True):
        calls.append((list(configs), address))
        return {c: executor.RayOutcome(load_or_train_outcome(c, progress=False).run.path, "trained", 0, 1, "here", 0.0)
                for c in configs}

    monkeypatch.setattr(executor, "train_on_ray", fake_train_on_ray)
    monkeypatch.setenv("SSLGEO_EXECUTOR", "ray")
    p = make_preset("smoke", strengths=[0.0, 1.0], seeds=[0], n_train=256, epochs=1, encoder_width=4)
    load_or_train(p.configs()[0], progress=False)  # one of the two is stored already
    runs = sweep(p, progress=False, address="10.0.0.1:6379")
    assert calls == [([p.configs()[1]], "10.0.0.1:6379")]
    assert [r.config for r in runs] == p.configs() and all(r.path.parent == isolated_store for r in runs)
    assert sweep(p, progress=False) and len(calls) == 1  # everything stored: Ray is not called
