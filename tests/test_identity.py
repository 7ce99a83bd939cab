"""What names a run and what keys a cache: the training boundary, no import circle, no global side effects."""
import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from sslgeo_lib import OPTIONAL_PACKAGES, store
from sslgeo_lib.config import RunConfig

LIB = Path(__file__).resolve().parents[1] / "sslgeo_lib"
TINY = RunConfig(n_train=256, encoder_width=4, projector_width=16, projector_out=8, epochs=1, batch_size=64,
                 monitor_every=1, strength=0.5)
# The keys of each package copy named on the command line, each imported afresh in one process (the packages it
# imports, torch among them, load once): [run id, feature-cache code key, measure-cache code key] per copy.
KEYS = """
import importlib, json, sys
from pathlib import Path
out = []
for root in sys.argv[2:]:
    for name in [m for m in sys.modules if m.split(".")[0] == "sslgeo_lib"]:
        del sys.modules[name]
    sys.path[0] = root
    importlib.invalidate_caches()
    store = importlib.import_module("sslgeo_lib.store")
    assert Path(store.__file__).is_relative_to(root), (store.__file__, root)
    cfg = importlib.import_module("sslgeo_lib.config").RunConfig(**json.loads(sys.argv[1]))
    out.append([store.run_id(cfg), store.code_hash(importlib.import_module("sslgeo_lib.embed").FEATURE_CODE),
                store.code_hash(importlib.import_module("sslgeo_lib.measures").MEASURE_CODE)])
print(json.dumps(out))
"""


def _keys_of_copies(tmp_path, *edits) -> list[list[str]]:
    """For each edit, a copy of the package after it: (run id, feature-cache code key, measure-cache code key)
    computed by that copy, in a process that has nothing else of the package."""
    roots = []
    for i, edit in enumerate(edits):
        roots.append(tmp_path / f"copy{i}")
        shutil.copytree(LIB, roots[-1] / "sslgeo_lib", ignore=shutil.ignore_patterns("__pycache__"))
        edit(roots[-1] / "sslgeo_lib")
    out = subprocess.run([sys.executable, "-c", KEYS, json.dumps(TINY.to_dict()), *map(str, roots)],
                         cwd=tmp_path, check=True, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", **_data_env()})
    return json.loads(out.stdout)


def _data_env():
    return {k: os.environ[k] for k in ("SSLGEO_DATA", "SSLGEO_CACHE", "HOME") if k in os.environ}


def _append_comment(paths):
    def edit(pkg):
        for p in paths(pkg):
            p.write_text(p.read_text() + "\n# an edit that changes nothing\n")
    return edit


def _outside(pkg):
    return [p for p in pkg.rglob("*.py") if "training" not in p.relative_to(pkg).parts]


def test_editing_any_module_outside_the_boundary_keeps_every_run(cifar, tmp_path):
    assert _keys_of_copies(tmp_path, _append_comment(_outside))[0][0] == store.run_id(TINY)


WEIGHT_SHAPING = ["training/models.py", "training/augment.py", "training/loop.py", "training/losses.py",
                  "training/subset.py"]


def test_changing_the_weight_shaping_code_names_new_runs(cifar, tmp_path):
    keys = _keys_of_copies(tmp_path, *[_append_comment(lambda pkg, m=m: [pkg / m]) for m in WEIGHT_SHAPING])
    for module, (rid, *_) in zip(WEIGHT_SHAPING, keys):
        assert rid != store.run_id(TINY), module
    assert len({k[0] for k in keys}) == len(WEIGHT_SHAPING)  # each file is hashed as itself


def test_editing_plots_glue_verdicts_or_presets_recomputes_no_cache(cifar, tmp_path):
    from sslgeo_lib.embed import FEATURE_CODE
    from sslgeo_lib.measures import MEASURE_CODE

    edit = _append_comment(lambda pkg: [pkg / m for m in ("plots.py", "report.py", "claims.py", "stats.py",
                                                          "presets.py", "cli.py", "sweep.py", "store.py")])
    keys, geometry, embed = _keys_of_copies(tmp_path, edit, _append_comment(lambda pkg: [pkg / "geometry.py"]),
                                            _append_comment(lambda pkg: [pkg / "embed.py"]))
    assert keys == [store.run_id(TINY), store.code_hash(FEATURE_CODE), store.code_hash(MEASURE_CODE)]
    # while the code that computes a cache does key it
    assert geometry[2] != keys[2] and embed[1] != keys[1]


def test_the_data_fingerprint_is_part_of_the_id(cifar, monkeypatch):
    before = store.run_id(TINY)
    monkeypatch.setattr("sslgeo_lib.store.fingerprint", lambda name: "other data")
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
    """sslgeo_lib modules imported by one file, at module level or inside any function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sslgeo_lib"):
            names = [f"{node.module}.{a.name}" for a in node.names]
            found |= {n for n in names if (LIB.parent / (n.replace(".", "/") + ".py")).exists()} or {node.module}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("sslgeo_lib")}
    return found


def _graph() -> dict[str, set[str]]:
    graph = {}
    for p in LIB.rglob("*.py"):
        name = ".".join(p.relative_to(LIB.parent).with_suffix("").parts).removesuffix(".__init__")
        graph[name] = {m for m in _imports(p) if m != name}
    return graph


def _circle(graph: dict[str, set[str]]) -> list[str] | None:
    """The first import circle found in `graph` (module -> imported modules), or None."""
    state = {}

    def visit(node, path):
        if state.get(node) == "open":
            return path + [node]
        if state.get(node) != "done":
            state[node] = "open"
            for nxt in sorted(graph.get(node, ())):
                found = visit(nxt, path + [node])
                if found:
                    return found
            state[node] = "done"
        return None

    for node in sorted(graph):
        found = visit(node, [])
        if found:
            return found
    return None


def test_no_import_circle_even_through_function_bodies():
    graph = _graph()
    circle = _circle(graph)
    assert circle is None, "import circle: " + " -> ".join(circle or [])
    assert "sslgeo_lib.fileio" in graph and graph["sslgeo_lib.fileio"] == set()  # the leaf
    assert {"sslgeo_lib.runs", "sslgeo_lib.store"} <= graph["sslgeo_lib.executor"]  # one run below the executors
    assert "sslgeo_lib.executor" in graph["sslgeo_lib.sweep"] and "sslgeo_lib.sweep" not in graph["sslgeo_lib.runs"]


def test_the_circle_guard_sees_an_import_inside_a_function(tmp_path):
    """The guard's own known answer: an import hidden in a function body still closes a circle."""
    pkg = tmp_path / "sslgeo_lib"
    pkg.mkdir()
    (pkg / "a.py").write_text("from sslgeo_lib.b import g\n")
    (pkg / "b.py").write_text("def g():\n    from sslgeo_lib.a import x\n    return x\n")
    graph = {f"sslgeo_lib.{p.stem}": {m for m in _imports(p) if m.startswith("sslgeo_lib.")} for p in pkg.glob("*.py")}
    for name, deps in graph.items():  # resolve against the temporary package, not the real one
        graph[name] = {d if d in graph else d.rsplit(".", 1)[0] for d in deps}
    assert _circle(graph) in (["sslgeo_lib.a", "sslgeo_lib.b", "sslgeo_lib.a"],
                              ["sslgeo_lib.b", "sslgeo_lib.a", "sslgeo_lib.b"])


def test_imports_sit_at_the_top_except_the_optional_heavy_packages():
    """Inside a function only `OPTIONAL_PACKAGES` are imported. The training code is exempt: its text names every
    run (`store.code_hash`), so moving its two late imports would rename, and retrain, every stored run."""
    late = []
    for p in LIB.rglob("*.py"):
        if "training" in p.relative_to(LIB).parts:
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            for body in (getattr(node, "body", None),) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) \
                    else ():
                for inner in ast.walk(ast.Module(body=body, type_ignores=[])):
                    if isinstance(inner, (ast.Import, ast.ImportFrom)):
                        top = (inner.module if isinstance(inner, ast.ImportFrom) else inner.names[0].name).split(".")[0]
                        if top not in OPTIONAL_PACKAGES:
                            late.append(f"{p.relative_to(LIB)}:{inner.lineno}")
    assert late == []


def test_heavy_optional_packages_load_only_when_used():
    code = ("import sys, sslgeo_lib.sweep, sslgeo_lib.claims, sslgeo_lib.measures, sslgeo_lib.cli, sslgeo_lib.report, "
            "sslgeo_lib.summary, sslgeo_lib.browser, sslgeo_lib.geometry\n"
            f"print(sorted(m for m in {OPTIONAL_PACKAGES!r} if m in sys.modules))")
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
    from sslgeo_lib.runs import load_or_train
    from sslgeo_lib.training.loop import new_model

    torch.manual_seed(123)
    np.random.seed(123)
    t0, n0 = _global_state()
    new_model(TINY)
    run = load_or_train(TINY, progress=False)
    run.model()
    t1, n1 = _global_state()
    assert torch.equal(t0, t1) and np.array_equal(n0, n1)
    # and the model is still fully determined by its seed
    a, b = new_model(TINY), new_model(TINY)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
