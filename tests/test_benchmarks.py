"""The recipe benchmark at smoke size: every column printed and stored, the curve drawn, a second call resumes."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # trains six tiny runs (about a minute): the full tier


def test_recipe_quick_prints_every_column_and_resumes(cifar, tmp_path, capsys, monkeypatch):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import recipe
    finally:
        sys.path.pop(0)
    cmd = [sys.executable, str(ROOT / "benchmarks" / "recipe.py"), "--quick", "--out", str(tmp_path)]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "rows-quick.jsonl").read_text().splitlines()]
    assert {"screen", "final", "objective"} <= {r["stage"] for r in rows} <= {"screen", "final", "curve", "objective"}
    for r in rows:
        assert set(recipe.COLUMNS) <= set(r) and r["gain"] == pytest.approx(r["knn"] - r["knn_untrained"])
        assert 0 <= r["knn"] <= 1 and 0 <= r["linear"] <= 1 and r["images_per_s"] > 0 and r["minutes"] > 0
    printed = [ln for ln in first.stdout.splitlines()
               if ln.startswith(("screen", "final", "curve", "objective")) and " seed=" in ln]
    assert len(printed) == len(rows)  # one line per run, then the means over seeds
    for ln in printed:
        for column in ("knn", "untrained", "gain", "linear", "img/s", "min"):
            assert column in ln, (column, ln)
    assert f"columns: {', '.join(recipe.COLUMNS)}" in first.stdout
    assert (tmp_path / "recipe_curve.png").stat().st_size > 0
    # a second call (here, in this process) finds every row stored and trains nothing; --markdown only prints
    monkeypatch.setattr(recipe, "run_row", lambda *a: pytest.fail("a stored row was measured again"))
    recipe.main(["--quick", "--out", str(tmp_path)])
    assert len((tmp_path / "rows-quick.jsonl").read_text().splitlines()) == len(rows)
    assert f"\n{len(rows)} rows (" in capsys.readouterr().out
    recipe.main(["--quick", "--out", str(tmp_path), "--markdown"])
    table = capsys.readouterr().out
    assert table.startswith("| stage | recipe |") and "| final | chosen |" in table
