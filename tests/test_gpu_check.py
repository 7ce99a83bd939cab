"""benchmarks/gpu_check.sh in its dry mode (every step at smoke size on the CPU), so the GPU check cannot rot
between the sessions that have a GPU; and its refusals."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def _check(*args, timeout=900):
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHON": str(Path(sys.executable))})


def _times(out: Path) -> dict[str, int]:
    """{part: exit status} from OUTDIR/times.txt ("name: 12 s, exit 0")."""
    rows = [line.split(": ", 1) for line in (out / "times.txt").read_text().splitlines()]
    return {name: int(rest.rsplit("exit ", 1)[1]) for name, rest in rows}


@pytest.mark.slow
def test_dry_check_runs_every_step(cifar, tmp_path):
    out = tmp_path / "check"
    r = _check("--dry", out)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert _times(out) == {"tests": 0, "train_speed": 0, "c2_notebook": 0, "short_run": 0, "parallel": 0}
    assert "device: none: a dry run on the CPU" in (out / "gpu.txt").read_text()
    assert "tests collected" in (out / "tests.txt").read_text()
    assert "speed-up of ours over the reference" in (out / "train_speed.txt").read_text()
    short = (out / "short_run.txt").read_text()
    assert short.count("images/s") == 2 and "c2_verdict = not tested" in short  # 2 runs; one seed: no gate, no verdict
    assert "with 1 jobs" in (parallel := (out / "parallel.txt").read_text()) and "identical" in parallel


@pytest.mark.slow
def test_dry_book_builds_the_core_chapters_and_writes_verdicts(html, book_config, tmp_path):
    """With the smoke book's configuration (`--config`), whose jupyter-cache holds every notebook executed by that
    build (the `html` fixture): the script's steps run, the notebooks are not executed a second time."""
    out = tmp_path / "book"
    r = _check("--dry", "--book", "--config", book_config, out)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert _times(out) == {"train": 0, "build": 0, "verdicts": 0}
    record = json.loads((out / "verdicts.json").read_text())
    assert (record["preset"] == "smoke"
            and [c["claim"] for c in record["claims"]] == ["C1", "C2", "C3", "C4", "C5", "C7"])
    html = out / "book" / "_build" / "html"
    assert (html / "book" / "c2_invariance.html").is_file() and not (html / "book" / "c6_projector.html").exists()


def test_bad_option_is_refused_with_what_is_accepted(tmp_path):
    r = _check("--fast", tmp_path)
    assert r.returncode == 2
    assert "unknown option --fast (accepted: --dry, --book, --config FILE, --wheels DIR, OUTDIR; --help)" in r.stderr


def test_wheels_must_name_a_folder(tmp_path):
    r = _check("--wheels", tmp_path / "none", tmp_path / "out")
    assert r.returncode == 2 and "--wheels needs a folder of wheels" in r.stderr


def test_config_must_name_a_file_and_goes_with_book(tmp_path):
    r = _check("--dry", "--book", "--config", tmp_path / "none.yml", tmp_path / "out")
    assert r.returncode == 2 and "--config needs a book configuration file" in r.stderr
    (tmp_path / "c.yml").write_text("title: x\n")
    r = _check("--dry", "--config", tmp_path / "c.yml", tmp_path / "out")
    assert r.returncode == 2 and "--config is for --book only" in r.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_without_a_gpu_only_the_dry_mode_runs(tmp_path):
    r = _check(tmp_path / "out")
    assert r.returncode == 2 and "torch sees no CUDA GPU here; use --dry" in r.stderr


def test_help_prints_the_whole_usage(tmp_path):
    r = _check("--help")
    assert r.returncode == 0 and r.stdout.startswith("# The GPU check")
    assert r.stdout.rstrip().endswith("the exit status is non-zero if any part failed.")
