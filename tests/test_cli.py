import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from sslgeo_lib.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_train_list_and_clean(cifar, isolated_store, capsys):
    main(["train", "--preset", "smoke", "--strengths", "[1.0]", "--quiet", "--main-only"])
    out = capsys.readouterr().out
    assert "s=1" in out and "img/s" in out
    main(["list"])
    listed = capsys.readouterr().out
    assert "1 run(s)" in listed and " ok " in listed
    main(["clean", "--all"])
    assert "removed 1 item(s)" in capsys.readouterr().out


def test_bad_arguments_exit_with_a_message(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--preset", "huge"])
    assert exit_info.value.code == 2
    assert "unknown preset 'huge'" in capsys.readouterr().err


@pytest.mark.slow
def test_verdicts_writes_every_core_claim_with_provenance(cifar, tmp_path, capsys):
    out = tmp_path / "verdicts.json"
    main(["verdicts", "--preset", "smoke", "--main-only", "--out", str(out)])
    record = json.loads(out.read_text())
    assert record["preset"] == "smoke" and record["git_sha"] and record["packages"]["torch"] == version("torch")
    assert [c["claim"] for c in record["claims"]] == ["C1", "C2", "C3", "C4", "C5", "C7"]  # no C6
    smoke_claims = [c for c in record["claims"] if c["claim"] != "C7"]  # one seed: no interval, no verdict
    # one seed: the learned gate has no interval, so no claim is tested
    assert {c["verdict"] for c in smoke_claims} == {"not tested"} and all(c["low"] is None for c in smoke_claims)
    assert [(r["strength"], r["seed"]) for r in record["runs"]] == [(0.0, 0), (1.0, 0)]
    assert all(r["images_per_s"] > 0 for r in record["runs"])
    assert all(c["covers"] for c in record["claims"]) and record["sweep"]["eval"]["n_test"] == 500
    assert "C2: not tested" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--executor", "dask"], "argument --executor: invalid choice: 'dask' (choose from 'local', 'ray')"),
    (["--address", "10.0.0.1:6379"], "--address names a Ray cluster: use it with --executor ray"),
])
def test_bad_executor_arguments_exit_with_a_message(argv, message, capsys, monkeypatch):
    monkeypatch.delenv("SSLGEO_EXECUTOR", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--preset", "smoke", *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_params_lists_a_notebooks_parameters():
    out = subprocess.run([sys.executable, "-m", "sslgeo_lib.cli", "params", str(ROOT / "book" / "c2_invariance.ipynb")],
                         capture_output=True, text=True, check=True).stdout
    assert "strengths: list = None  # training strengths" in out and "preset: str" in out


def test_check_names_each_missing_prerequisite_before_anything_trains(cifar, isolated_store, monkeypatch, tmp_path,
                                                                       capsys):
    """`sslgeo check` (what `make book` runs first): ready on a machine with MathJax, the data and room; each
    missing prerequisite (npm without MathJax, disk, data) is named with what to do, and nothing is trained."""
    from collections import namedtuple

    from sslgeo_lib import cli
    from sslgeo_lib.presets import make_preset

    smoke = make_preset("smoke")
    mathjax = tmp_path / "tex-svg-full.js"
    mathjax.write_text("// stand-in")
    monkeypatch.setattr(cli, "MATHJAX", mathjax)
    assert cli.prerequisites(smoke, book=True) == []
    main(["check", "--preset", "smoke", "--book"])
    assert "ready to build the book of preset smoke (data, disk, npm or MathJax)" in capsys.readouterr().out
    monkeypatch.setattr(cli, "MATHJAX", tmp_path / "absent.js")
    monkeypatch.setattr(cli.shutil, "which", lambda name: None)
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(cli.shutil, "disk_usage", lambda path: Usage(10**9, 10**9, 10**6))
    assert len(cli.prerequisites(smoke)) == 1  # training alone needs no npm
    problems = cli.prerequisites(smoke, book=True)
    assert len(problems) == 2 and problems[0].startswith("npm is not on PATH")
    assert "GB free" in problems[1] and f"{len(smoke.all_configs())} run(s) to train" in problems[1]
    with pytest.raises(SystemExit, match="cannot build the book yet:\n- npm is not on PATH"):
        main(["check", "--preset", "smoke", "--book"])
    monkeypatch.setenv("SSLGEO_DATA", str(tmp_path / "no-such-data"))
    monkeypatch.setenv("SSLGEO_CACHE", str(tmp_path / "cache"))
    assert any(p.startswith("the data: ") for p in cli.prerequisites(smoke))
    assert not isolated_store.exists() or not any(isolated_store.iterdir())  # nothing was trained or written
