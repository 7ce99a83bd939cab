"""What names a run and what keys a cache: the training boundary, no import circle, no global side effects."""
import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sslgeo_lib import store
from sslgeo_lib.config import RunConfig

LIB = Path(__file__).resolve().parents[1] / "sslgeo_lib"
TINY = RunConfig(n_train=256, encoder_width=4, projector_width=16, projector_out=8, epochs=1, batch_size=64,
                 monitor_every=1, strength=0.5)
KEYS = ("from sslgeo_lib import store\nfrom sslgeo_lib.config import RunConfig\n"
        "from sslgeo_lib.embed import FEATURE_CODE\nfrom sslgeo_lib.measures import MEASURE_CODE\n"
        "import json, sys\ncfg = RunConfig(**json.loads(sys.argv[1]))\n"
        "print(json.dumps([store.run_id(cfg), store.code_hash(FEATURE_CODE), store.code_hash(MEASURE_CODE)]))")


def _keys_of_a_copy(tmp_path, edit) -> list[str]:
    """(run id, feature-cache code key, measure-cache code key) computed by a copy of the package after `edit`."""
    root = tmp_path / "copy"
    shutil.copytree(LIB, root / "sslgeo_lib", ignore=shutil.ignore_patterns("__pycache__"))
    edit(root / "sslgeo_lib")
    out = subprocess.run([sys.executable, "-c", KEYS, json.dumps(TINY.to_dict())], cwd=root, check=True,
                         capture_output=True, text=True, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin",
                                                              **_data_env()})
    return json.loads(out.stdout)


def _data_env():
    import os

    return {k: os.environ[k] for k in ("SSLGEO_DATA", "SSLGEO_CACHE", "HOME") if k in os.environ}


def _append_comment(paths):
    def edit(pkg):
        for p in paths(pkg):
            p.write_text(p.read_text() + "\n# an edit that changes nothing\n")
    return edit


def _outside(pkg):
    return [p for p in pkg.rglob("*.py") if "training" not in p.relative_to(pkg).parts]


def test_editing_any_module_outside_the_boundary_keeps_every_run(cifar, tmp_path):
    before = [store.run_id(TINY)]
    assert _keys_of_a_copy(tmp_path, _append_comment(_outside))[0] == before[0]


@pytest.mark.parametrize("module", ["training/models.py", "training/augment.py", "training/loop.py",
                                    "training/losses.py", "training/subset.py"])
def test_changing_the_weight_shaping_code_names_new_runs(cifar, tmp_path, module):
    assert _keys_of_a_copy(tmp_path, _append_comment(lambda pkg: [pkg / module]))[0] != store.run_id(TINY)


def test_editing_plots_glue_verdicts_or_presets_recomputes_no_cache(cifar, tmp_path):
    from sslgeo_lib.embed import FEATURE_CODE
    from sslgeo_lib.measures import MEASURE_CODE

    edit = _append_comment(lambda pkg: [pkg / m for m in ("plots.py", "report.py", "claims.py", "stats.py",
                                                          "presets.py", "cli.py", "sweep.py", "store.py")])
    keys = _keys_of_a_copy(tmp_path, edit)
    assert keys == [store.run_id(TINY), store.code_hash(FEATURE_CODE), store.code_hash(MEASURE_CODE)]
    # while the code that computes a cache does key it
    assert _keys_of_a_copy(tmp_path / "b", _append_comment(lambda pkg: [pkg / "geometry.py"]))[2] != keys[2]
    assert _keys_of_a_copy(tmp_path / "c", _append_comment(lambda pkg: [pkg / "embed.py"]))[1] != keys[1]


def test_the_data_fingerprint_is_part_of_the_id(cifar, monkeypatch):
    before = store.run_id(TINY)
    monkeypatch.setattr("sslgeo_lib.data.fingerprint", lambda name: "other data")
    assert store.run_id(TINY) != before


def test_the_resolved_precision_and_device_are_part_of_the_id(cifar, monkeypatch):
    from sslgeo_lib.training import loop

    forced = TINY.replace(precision="bf16")
    monkeypatch.setattr(loop, "cpu_has_bf16", lambda: True)
    bf16, forced_id = store.run_id(TINY, "cpu"), store.run_id(forced, "cpu")
    monkeypatch.setattr(loop, "cpu_has_bf16", lambda: False)
    assert store.run_id(TINY, "cpu") != bf16  # 'auto' resolves to fp32 on a CPU without bf16: other weights
    assert store.run_id(forced, "cpu") == forced_id  # an explicit precision resolves the same everywhere
    monkeypatch.setattr("torch.cuda.is_bf16_supported", lambda: True)
    assert store.run_id(TINY, "cuda") != bf16  # same config and precision, other device


def _imports(path: Path) -> set[str]:
    """sslgeo_lib modules imported at module level (not inside functions) by one file."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sslgeo_lib"):
            names = [f"{node.module}.{a.name}" for a in node.names]
            found |= {n for n in names if (LIB.parent / (n.replace(".", "/") + ".py")).exists()} or {node.module}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("sslgeo_lib")}
    return found


def test_no_import_circle():
    graph = {}
    for p in LIB.rglob("*.py"):
        name = ".".join(p.relative_to(LIB.parent).with_suffix("").parts).removesuffix(".__init__")
        graph[name] = {m for m in _imports(p) if m != name}
    state = {}

    def visit(node, path):
        if state.get(node) == "open":
            pytest.fail("import circle: " + " -> ".join(path + [node]))
        if state.get(node) != "done":
            state[node] = "open"
            for nxt in sorted(graph.get(node, ())):
                visit(nxt, path + [node])
            state[node] = "done"

    for node in sorted(graph):
        visit(node, [])
    assert "sslgeo_lib.fileio" in graph and graph["sslgeo_lib.fileio"] == set()  # the leaf


def test_heavy_optional_packages_load_only_when_used():
    code = ("import sys, sslgeo_lib.sweep, sslgeo_lib.claims, sslgeo_lib.measures, sslgeo_lib.cli\n"
            "print(sorted(m for m in ('skdim', 'papermill', 'myst_nb', 'ray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_training_code_holds_nothing_else():
    files = sorted(p.name for p in (LIB / "training").glob("*.py"))
    assert files == ["__init__.py", "augment.py", "loop.py", "losses.py", "models.py", "subset.py"]
    loop = (LIB / "training" / "loop.py").read_text()
    for outside in ("provenance", "monitor", "presets", "store", "argparse"):
        assert f"sslgeo_lib.{outside}" not in loop and f"import {outside}" not in loop


def _global_state():
    return torch.random.get_rng_state().clone(), np.random.get_state()[1].copy()


def test_building_training_and_loading_a_model_leave_the_global_rng_alone(cifar, isolated_store):
    from sslgeo_lib.sweep import get_or_train
    from sslgeo_lib.training.loop import new_model

    torch.manual_seed(123)
    np.random.seed(123)
    t0, n0 = _global_state()
    new_model(TINY)
    run = get_or_train(TINY, progress=False)
    run.model()
    t1, n1 = _global_state()
    assert torch.equal(t0, t1) and np.array_equal(n0, n1)
    # and the model is still fully determined by its seed
    a, b = new_model(TINY), new_model(TINY)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
