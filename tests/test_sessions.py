"""The test session's shared fixtures under pytest-xdist: `made_once` makes a folder once however many worker
processes ask at the same time, and a failed make is not taken for a made one."""
import multiprocessing
import time
from types import SimpleNamespace

import pytest
from conftest import made_once


def _ask(base, log):
    factory = SimpleNamespace(getbasetemp=lambda: base / "popen-gw")

    def make(folder):
        with open(log, "a") as f:
            f.write("made\n")
        time.sleep(0.5)  # long enough for the other worker to ask meanwhile
        (folder / "out").write_text("x")

    return (made_once(factory, "thing", make) / "out").read_text()


def _worker(base, log, name):
    import os

    os.environ["PYTEST_XDIST_WORKER"] = name
    assert _ask(base, log) == "x"


def test_two_workers_asking_at_once_make_it_once(tmp_path):
    (tmp_path / "popen-gw").mkdir()
    log = tmp_path / "log"
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_worker, args=(tmp_path, log, f"gw{i}")) for i in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert [w.exitcode for w in workers] == [0, 0]
    assert log.read_text() == "made\n" and (tmp_path / "thing" / "out").is_file()


def test_a_failed_make_is_made_again(tmp_path):
    factory = SimpleNamespace(getbasetemp=lambda: tmp_path)
    calls = []

    def failing(folder):
        calls.append(1)
        raise RuntimeError("build failed")

    for _ in range(2):
        with pytest.raises(RuntimeError, match="build failed"):
            made_once(factory, "thing", failing)
    assert len(calls) == 2 and not (tmp_path / "thing.done").exists()
    assert made_once(factory, "thing", lambda folder: (folder / "ok").touch()) == tmp_path / "thing"
    assert (tmp_path / "thing" / "ok").is_file()
