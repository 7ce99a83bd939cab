"""Named presets (a sweep of RunConfigs plus EvalSettings) and the one function notebooks pass parameters to.

`make_preset(preset, **parameters)` accepts every notebook parameter: `strengths` and `seeds` (the sweep),
any RunConfig field (training) and any EvalSettings field (evaluation); None keeps the preset's value. Values
may be Python literals as text (papermill's `-p` passes lists as text). A wrong name, type or range fails
at once with a message naming the parameter and what it accepts.
"""
from __future__ import annotations

import ast
import dataclasses
import difflib
import os
from dataclasses import dataclass, field

import torch

from sslgeo_lib.config import MAX_SEED, METHODS, EvalSettings, RunConfig, field_types
from sslgeo_lib.training.augment import FAMILIES, policy


@dataclass(frozen=True)
class ShapeGrid:
    """C6's projector shapes: (depth, hidden width) pairs trained at a strong s, and the depths in `weak_depths`
    also at a weak s (at the base config's width), each over the preset's seeds. Depth 0 (no projector) and
    depth 1 (linear) have no hidden width; theirs is set to the base config's so that one shape is one run."""

    shapes: tuple[tuple[int, int], ...] = ((0, 512), (1, 512), (2, 512), (2, 2048), (3, 512))
    strong: float = 1.0
    weak: float = 0.25
    weak_depths: tuple[int, ...] = (0, 2)


@dataclass(frozen=True)
class BeyondGrid:
    """B1's objectives and B2's augmentation families, each trained at `strengths` over the preset's seeds, beside
    the main sweep's SimCLR runs with the full policy at the same strengths (their reference, trained once).
    `recipes` gives an objective the RunConfig fields it trains with beyond the base config's (its own learning
    rate, optimiser, ...), each measured on the recipe benchmark (`benchmarks/recipe.py --stage objectives`,
    results/recipe/rows.jsonl; docs/recipe.md, where every recipe tried is listed with its kNN gain). `schedules`
    gives an objective that does not learn in the base config's epochs a multiple of them (measured on the same
    benchmark; relative, so a preset's or a notebook's own epochs still scale it)."""

    methods: tuple[str, ...] = ("vicreg", "barlow_twins", "byol")
    families: tuple[str, ...] = ("crop", "color", "flip")
    strengths: tuple[float, ...] = (1.0,)
    recipes: tuple[tuple[str, tuple[tuple[str, object], ...]], ...] = (
        ("vicreg", (("lr", 0.02),)),
        ("barlow_twins", (("optimizer", "lars"), ("lr", 0.3), ("weight_decay", 1e-4), ("decay_scope", "weights"),
                          ("warmup_epochs", 1))),
        ("byol", (("lr", 0.06),)))
    schedules: tuple[tuple[str, float], ...] = ()

    def __post_init__(self):
        for kind, pairs in (("recipes", self.recipes), ("schedules", self.schedules)):
            for method, _ in pairs:
                if method not in METHODS:
                    raise ValueError(f"BeyondGrid.{kind} names {method!r}; accepted objectives: {', '.join(METHODS)}")
        for method, fields in self.recipes:
            RunConfig().replace(method=method, **dict(fields))  # a bad field or value fails here, named
        for method, factor in self.schedules:
            if not factor >= 1:
                raise ValueError(f"BeyondGrid.schedules gives {method} {factor!r} times the epochs; accepted: >= 1")

    def recipe(self, method: str, base: RunConfig | None = None) -> dict:
        """The RunConfig fields `method` trains with beyond the `base` config's (empty: the base config's), its
        epochs included where `schedules` multiplies them."""
        fields = dict(dict(self.recipes).get(method, ()))
        factor = dict(self.schedules).get(method)
        if factor is not None and base is not None:
            fields["epochs"] = round(base.epochs * factor)
        return fields

    def label(self, cfg: RunConfig) -> str:
        """An objective's run as the recipe benchmark names its recipe: method, base learning rate, then any other
        field its recipe sets (its epochs where `schedules` sets them)."""
        fields = self.recipe(cfg.method)
        if cfg.method in dict(self.schedules):
            fields["epochs"] = cfg.epochs
        return recipe_label(cfg, fields)


def recipe_label(cfg: RunConfig, fields: dict) -> str:
    """`cfg`'s method and base learning rate, then each field of `fields` but the learning rate, as "name value"."""
    rest = "".join(f", {k} {v:g}" if isinstance(v, float) else f", {k} {v}" for k, v in fields.items() if k != "lr")
    return f"{cfg.method} lr {cfg.lr:g}{rest}"


@dataclass(frozen=True)
class Preset:
    """A sweep (strengths x seeds around a base RunConfig), how its runs are evaluated, and C6's shape grid."""

    name: str
    base: RunConfig
    strengths: tuple[float, ...]
    seeds: tuple[int, ...]
    eval: EvalSettings = field(default_factory=EvalSettings)
    shapes: ShapeGrid = field(default_factory=ShapeGrid)
    beyond: BeyondGrid = field(default_factory=BeyondGrid)
    grid_seed_count: int = 0  # seeds of C6's, B1's and B2's grids: the first this many of `seeds` (0 = all)

    def configs(self) -> list[RunConfig]:
        """The sweep, strengths outer and seeds inner."""
        return [self.base.replace(strength=s, seed=k) for s in self.strengths for k in self.seeds]

    @property
    def grid_seeds(self) -> tuple[int, ...]:
        """The seeds of C6's, B1's and B2's runs: the first `grid_seed_count` of the sweep's (all for 0)."""
        return self.seeds[:self.grid_seed_count] if self.grid_seed_count else self.seeds

    def shape_configs(self) -> list[RunConfig]:
        """C6's runs: every shape at the strong s, the weak depths at the weak s; seeds inner. The default shape
        at a strength of the main sweep is the main sweep's run (trained once)."""
        g, out = self.shapes, []
        points = ([(g.strong, d, w) for d, w in g.shapes]
                  + [(g.weak, d, self.base.projector_width) for d in g.weak_depths])
        for s, depth, width in points:
            width = width if depth >= 2 else self.base.projector_width
            out += [self.base.replace(strength=s, projector_depth=depth, projector_width=width, seed=k)
                    for k in self.grid_seeds]
        return list(dict.fromkeys(out))

    def reference_configs(self) -> list[RunConfig]:
        """B1's and B2's reference: SimCLR with the full policy at the grid's strengths (main-sweep runs)."""
        return [self.base.replace(strength=s, seed=k, method="simclr", augment_family="all")
                for s in self.beyond.strengths for k in self.grid_seeds]

    def objective_configs(self) -> list[RunConfig]:
        """B1's runs: every objective of the grid at its strengths (seeds inner), each with its recipe
        (BeyondGrid.recipes)."""
        g = self.beyond
        return [self.base.replace(method=m, augment_family="all", strength=s, seed=k, **g.recipe(m, self.base))
                for m in g.methods for s in g.strengths for k in self.grid_seeds]

    def family_configs(self) -> list[RunConfig]:
        """B2's runs: every augmentation family of the grid alone at its strengths (seeds inner)."""
        g = self.beyond
        return [self.base.replace(method="simclr", augment_family=f, strength=s, seed=k)
                for f in g.families for s in g.strengths for k in self.grid_seeds]

    def all_configs(self) -> list[RunConfig]:
        """Every run of the book: the main sweep, C6's shapes, B1's objectives and B2's families (each once)."""
        return list(dict.fromkeys(self.configs() + self.shape_configs() + self.reference_configs()
                                  + self.objective_configs() + self.family_configs()))


# The cpu preset's training recipe, chosen by benchmarks/recipe.py (docs/recipe.md): the RunConfig fields it sets
# beyond the defaults. All 50,000 training images (more images beat more epochs at equal cost), batch 128 (more
# steps), temperature 0.2, and 7 epochs: the knee of its frontier (kNN 0.481, 0.512, 0.528, 0.532 after 2, 4, 7,
# 9 epochs), 350,000 source images, about 3.9 min a run at 1,500 images/s.
CPU_RECIPE = dict(n_train=0, epochs=7, batch_size=128, temperature=0.2)

PRESETS = {
    # The whole book in minutes, for tests and CI: one seed, so verdicts come out "not tested" or "inconclusive".
    # Smaller evaluation: 500 test images, the kNN protocol at 2,000 and 500, one C for the linear probe (picking C
    # on a validation split is the probe's tests').
    "smoke": Preset("smoke", RunConfig(n_train=1000, encoder_width=8, projector_width=128, projector_out=32,
                                       epochs=4, batch_size=128, monitor_every=1),
                    strengths=(0.0, 1.0), seeds=(0,),
                    eval=EvalSettings(n_test=500, n_views=4, n_anchor=40, n_id=0, tangent_k=20, n_probe_test=500,
                                      probe_c_grid=(0.1,), protocol_bank=2000, protocol_queries=500),
                    shapes=ShapeGrid(shapes=((0, 128), (1, 128), (2, 128), (2, 256), (3, 128)), strong=1.0, weak=0.0),
                    beyond=BeyondGrid(strengths=(1.0,))),
    # Meaningful verdicts on a 2-core CPU; sizes calibrated in docs/recipe.md and the methods chapter.
    # 4 strengths x 4 seeds (the power of the rule's per-strength tests grows with seeds); C6, B1 and B2 on 3 seeds.
    # The probes and tangent planes use 10,000 of the 50,000 training images (their cost grows with the set).
    # B1's objectives train twice the epochs: at 7 none reached a kNN gain of 0.10 with any step tried, at 14 each
    # came nearest it (docs/recipe.md, "B1's objectives").
    "cpu": Preset("cpu", RunConfig(**CPU_RECIPE), strengths=(0.0, 0.25, 0.5, 1.0), seeds=(0, 1, 2, 3),
                  eval=EvalSettings(n_probe_train=10_000), grid_seed_count=3,
                  beyond=BeyondGrid(schedules=(("vicreg", 2.0), ("barlow_twins", 2.0), ("byol", 2.0)))),
    # ResNet-18 on one GPU in minutes (the GPU check's --book): sized from the measured H200 training throughput
    # (about 20,000 images/s, bf16) so that training and the core chapters take <= 8 minutes there.
    # s = 0 is the control the paired rows (the step to the weakest s > 0) need; its cost on a GPU is not yet measured.
    "gpu-lite": Preset("gpu-lite", RunConfig(n_train=0, encoder="resnet18", epochs=5, batch_size=512, monitor_every=1),
                       strengths=(0.0, 0.25, 1.0), seeds=(0, 1, 2),
                       eval=EvalSettings(n_test=2000, n_probe_train=10_000),
                       beyond=BeyondGrid(strengths=(1.0,))),
    # Paper scale on one GPU.
    "gpu": Preset("gpu", RunConfig(n_train=0, encoder="resnet18", epochs=200, batch_size=512, monitor_every=20),
                  strengths=(0.0, 0.25, 0.5, 0.75, 1.0, 1.5), seeds=(0, 1, 2),
                  eval=EvalSettings(n_test=10_000, n_anchor=500),
                  shapes=ShapeGrid(shapes=((0, 512), (1, 512), (2, 128), (2, 512), (2, 2048), (3, 512), (3, 2048)),
                                   weak_depths=(0, 1, 2, 3)),
                  beyond=BeyondGrid(strengths=(0.25, 1.0))),
}
# The whole-pipeline null (rule v3): untrained networks of a preset's architecture, through every claim's code.
NULL_LR = 1e-9          # a learning rate that changes no weight (BatchNorm statistics still follow the data)
NULL_SEEDS = (0, 1, 2)  # three seeds, so that the rule can reach a decision (with one everything is inconclusive)
NULL_EVAL = EvalSettings(n_test=500, n_views=4, n_anchor=50, n_id=500, tangent_k=20, n_probe_train=2000,
                         n_probe_test=2000)
NULL_IMAGES = 5000  # training images of the untrained sweep's one epoch (fewer where the preset trains on fewer)
NULL_STEPS = 32     # the fewest BatchNorm updates of that epoch (momentum 0.1: 1 - 0.9^32 = 97% of the way to the data)
NULL_SIZES = ("n_test", "n_views", "n_anchor", "n_id", "tangent_k", "n_probe_train", "n_probe_test")


def null_eval(p: Preset) -> EvalSettings:
    """`p`'s evaluation (its kNN protocol and probe settings) at NULL_EVAL's sizes, or at p's own where they are
    smaller (a size of 0 means all, and so is never smaller; p's probes on "the run's own training subset" count as
    its training images)."""
    own = dataclasses.replace(p.eval, n_probe_train=p.eval.n_probe_train or p.base.n_train)
    return dataclasses.replace(p.eval, **{f: min(getattr(NULL_EVAL, f), getattr(own, f) or getattr(NULL_EVAL, f))
                                          for f in NULL_SIZES})


def null_preset(p: Preset, n_train: int | None = None, batch_size: int | None = None,
                methods: tuple[str, ...] | None = None) -> Preset:
    """An untrained sweep of `p`'s architecture (encoder, widths, projector; D and m as in `p`): learning rate
    NULL_LR for one epoch of `n_train` images (default NULL_IMAGES, or p's training images where fewer) in batches
    of `batch_size` (default p's, smaller where the epoch would take fewer than NULL_STEPS steps: enough for
    BatchNorm's running statistics to follow the data), s = 0 and p's strongest s, NULL_SEEDS, evaluated at
    `null_eval(p)`'s sizes; C6's grid at depths 0 and 2 and B1's objectives (`methods`, default p's) at the
    strongest s. Nothing in it learned: a claim it supports is the architecture's, not learning's."""
    top = max(p.strengths)
    n_train = n_train or min(NULL_IMAGES, p.base.n_train or NULL_IMAGES)
    batch_size = batch_size or min(p.base.batch_size, max(n_train // NULL_STEPS, 1))
    base = p.base.replace(lr=NULL_LR, epochs=1, warmup_epochs=0, n_train=n_train, batch_size=batch_size,
                          monitor_every=0)
    return dataclasses.replace(
        p, name=f"{p.name} (untrained)", base=base, strengths=(0.0, top), seeds=NULL_SEEDS, eval=null_eval(p),
        shapes=ShapeGrid(shapes=((0, base.projector_width), (2, base.projector_width)), strong=top, weak=top,
                         weak_depths=()),
        beyond=BeyondGrid(methods=methods or p.beyond.methods, families=(), strengths=(top,), recipes=()),
        grid_seed_count=0)


SWEEP_PARAMETERS = ("strengths", "seeds", "allow_large_sweep", "shapes", "shape_strong", "shape_weak",
                    "methods", "families", "beyond_strengths")
# The most runs a sweep may queue without `allow_large_sweep=True`: above the largest preset (18 runs) with room
# for custom grids, and far below a typo such as 10,000 seeds (20,000 runs of the cpu preset is about 2 months).
MAX_SWEEP_RUNS = 100


def resolve_preset_name(name: str = "auto") -> str:
    """'auto' means $SSLGEO_PRESET if set, else 'gpu' when CUDA is available, else 'cpu'."""
    if name == "auto":
        name = os.environ.get("SSLGEO_PRESET", "")
        if not name:

            name = "gpu" if torch.cuda.is_available() else "cpu"
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; accepted: auto, {', '.join(PRESETS)}")
    return name


def parse_literal(name: str, value, kind: type, text: bool = True):
    """Accept a value of `kind`, or (if `text`) its Python-literal string: papermill's -p passes lists as text."""
    if text and isinstance(value, str) and kind is not str:
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise ValueError(f"parameter {name}={value!r} is not a Python literal of type {kind.__name__}") from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind in (list, tuple) and isinstance(value, (list, tuple)):
        value = kind(value)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise TypeError(f"parameter {name} must be {kind.__name__}, got {value!r} ({type(value).__name__})")
    return value


def _did_you_mean(key: str, names) -> str:
    close = difflib.get_close_matches(key, names, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def parameter_names() -> list[str]:
    """Every parameter `make_preset` accepts besides `preset`."""
    return [*SWEEP_PARAMETERS, *field_types(RunConfig), *field_types(EvalSettings)]


def _shape_changes(grid: ShapeGrid, shapes, strong, weak) -> ShapeGrid:
    changes = {}
    if shapes is not None:
        pairs = parse_literal("shapes", shapes, list)
        if not pairs or not all(isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(v, int) for v in p)
                                and p[0] >= 0 and p[1] >= 1 for p in pairs):
            raise ValueError(f"bad notebook parameter: shapes must be a non-empty list of [depth >= 0, width >= 1] "
                             f"pairs, got {shapes!r}")
        changes["shapes"] = tuple((int(d), int(w)) for d, w in pairs)
    for name, value in (("strong", strong), ("weak", weak)):
        if value is not None:
            changes[name] = parse_literal(f"shape_{name}", value, float)
            policy(changes[name])
    return dataclasses.replace(grid, **changes)


def _beyond_changes(grid: BeyondGrid, methods, families, strengths) -> BeyondGrid:
    changes = {}
    for name, value, accepted in (("methods", methods, METHODS[1:]), ("families", families, tuple(FAMILIES)[1:])):
        if value is not None:
            names = tuple(parse_literal(name, value, list))
            bad = [v for v in names if v not in accepted]
            if not names or bad or len(set(names)) < len(names):
                raise ValueError(f"bad notebook parameter: {name} must be a non-empty list of distinct names from "
                                 f"{', '.join(accepted)} (the reference is always shown); got {value!r}")
            changes[name] = names
    if strengths is not None:
        changes["strengths"] = tuple(float(parse_literal(f"beyond_strengths[{i}]", s, float, text=False))
                                     for i, s in enumerate(parse_literal("beyond_strengths", strengths, list)))
        s = changes["strengths"]
        if not s or any(v <= 0 for v in s) or len(set(s)) < len(s):
            raise ValueError(f"bad notebook parameter: beyond_strengths must be a non-empty list of distinct s > 0, "
                             f"got {strengths!r}")
        for s in changes["strengths"]:
            policy(s)
    return dataclasses.replace(grid, **changes)


def notebook_parameters(namespace: dict) -> dict:
    """The parameters a notebook was run with, from its `globals()`: the names its parameters cell declares
    (annotated assignments, so they are in `__annotations__`) and the names papermill injected (the cell
    IPython recorded that starts with papermill's "# Parameters" header). Called first in a notebook's setup
    cell, this passes a misspelt `-p` name on to `make_preset`, which stops the notebook naming it and every
    accepted name. Other globals (imports, results of later cells) are never taken for parameters."""
    names = list(namespace.get("__annotations__", {}))
    for source in namespace.get("In", []):
        if isinstance(source, str) and source.startswith("# Parameters"):
            names += _assigned_names(source)
    return {k: namespace[k] for k in dict.fromkeys(names) if k in namespace and _literal(namespace[k])}


def _assigned_names(source: str) -> list[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    return [t.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target]) if isinstance(t, ast.Name)]


def _literal(v) -> bool:
    """A value a parameters cell or papermill can write: None, bool, number, text, or containers of those."""
    if isinstance(v, (list, tuple)):
        return all(_literal(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _literal(x) for k, x in v.items())
    return v is None or isinstance(v, (bool, int, float, str))


class UnknownParameter(KeyError):
    """A parameter name that no setting has (a typo, or a name from another notebook)."""

    def __str__(self) -> str:
        return self.args[0]


def _sweep_changes(strengths, seeds) -> dict:
    changes = {}
    if strengths is not None:
        changes["strengths"] = tuple(float(parse_literal(f"strengths[{i}]", s, float, text=False))
                                     for i, s in enumerate(parse_literal("strengths", strengths, list)))
        for s in changes["strengths"]:
            policy(s)
    if seeds is not None:
        changes["seeds"] = tuple(parse_literal(f"seeds[{i}]", s, int, text=False)
                                 for i, s in enumerate(parse_literal("seeds", seeds, list)))
        bad = [k for k in changes["seeds"] if not 0 <= k <= MAX_SEED]
        if bad:
            raise ValueError(f"seeds must lie in [0, {MAX_SEED}], got {bad}")
    if changes.get("strengths") == () or changes.get("seeds") == ():
        raise ValueError("a sweep needs at least one strength and one seed")
    return changes


def make_preset(preset: str = "auto", strengths=None, seeds=None, allow_large_sweep=False, shapes=None,
                shape_strong=None, shape_weak=None, methods=None, families=None, beyond_strengths=None,
                **parameters) -> Preset:
    """The named preset with notebook parameters applied (None keeps the preset's value); see the module doc.
    `shapes` ([[depth, width], ...]), `shape_strong` and `shape_weak` change C6's ShapeGrid; `methods`,
    `families` and `beyond_strengths` the BeyondGrid of B1 and B2. A sweep of more than MAX_SWEEP_RUNS runs
    needs `allow_large_sweep=True`."""
    p = PRESETS[resolve_preset_name(preset)]
    p = dataclasses.replace(p, shapes=_shape_changes(p.shapes, shapes, shape_strong, shape_weak),
                            beyond=_beyond_changes(p.beyond, methods, families, beyond_strengths))
    allow_large_sweep = parse_literal("allow_large_sweep", allow_large_sweep, bool)
    run_types, eval_types = field_types(RunConfig), field_types(EvalSettings)
    run, evals = {}, {}
    for key, value in parameters.items():
        if key not in run_types and key not in eval_types:
            raise UnknownParameter(f"unknown parameter {key!r}; accepted: preset, {', '.join(parameter_names())}"
                                   f"{_did_you_mean(key, parameter_names())}")
        if value is not None:
            (run if key in run_types else evals)[key] = parse_literal(key, value, (run_types | eval_types)[key])
    try:
        out = dataclasses.replace(p, base=p.base.replace(**run), eval=p.eval.replace(**evals),
                                  **_sweep_changes(strengths, seeds))
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"bad notebook parameter: {exc}") from None
    n_runs = len(out.strengths) * len(out.seeds)
    if n_runs > MAX_SWEEP_RUNS and not allow_large_sweep:
        raise ValueError(f"bad notebook parameter: the sweep has {n_runs:,} runs ({len(out.strengths)} strengths x "
                         f"{len(out.seeds)} seeds), more than MAX_SWEEP_RUNS = {MAX_SWEEP_RUNS}; if that is meant, "
                         f"pass allow_large_sweep=True (papermill: -p allow_large_sweep True; sslgeo train: "
                         f"--allow-large-sweep)")
    return out


@dataclass(frozen=True)
class TheorySettings:
    """The C7 toys' sweep: the same on every preset except smoke, which runs fewer points (one seed)."""

    strengths: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)   # noise scales s of the linear problem
    toy_strengths: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)  # group-action strengths of the toy manifold
    seeds: tuple[int, ...] = (0, 1, 2)                     # initialisation and sample seeds
    n_dims: int = 12                                       # dimension of the linear problem's data
    steps: int = 1000                                      # optimisation steps of the linear maps


THEORY = {"smoke": TheorySettings(strengths=(0.5, 2.0), toy_strengths=(0.0, 1.0), seeds=(0,))}


def theory_settings(preset: str = "auto", **parameters) -> TheorySettings:
    """The C7 notebook's parameters over the preset's TheorySettings (None keeps the preset's value)."""
    base = THEORY.get(resolve_preset_name(preset), TheorySettings())
    types = {f.name: (tuple if f.type.startswith("tuple") else int) for f in dataclasses.fields(TheorySettings)}
    changes = {}
    for key, value in parameters.items():
        if key not in types:
            raise UnknownParameter(f"unknown parameter {key!r}; accepted: preset, {', '.join(types)}"
                                   f"{_did_you_mean(key, types)}")
        if value is not None:
            value = parse_literal(key, value, list if types[key] is tuple else int)
            changes[key] = tuple(float(v) for v in value) if key.endswith("strengths") else (
                tuple(int(v) for v in value) if key == "seeds" else value)
    out = dataclasses.replace(base, **changes)
    if min(out.n_dims, out.steps) < 1 or not out.strengths or not out.seeds:
        raise ValueError(f"bad notebook parameter: n_dims and steps must be >= 1 and the sweeps non-empty, got {out}")
    for s in out.strengths + out.toy_strengths:
        policy(s)
    return out


def resolved_parameters(p: Preset, names) -> dict:
    """The value each named notebook parameter had in a run of preset `p` (None parameters resolved to the
    preset's values): what a re-run must pass to reproduce it. Names outside the preset (a page's display
    options) are left out."""
    sweep = {"preset": p.name, "strengths": list(p.strengths), "seeds": list(p.seeds),
             "shapes": [list(s) for s in p.shapes.shapes], "shape_strong": p.shapes.strong, "shape_weak": p.shapes.weak,
             "methods": list(p.beyond.methods), "families": list(p.beyond.families),
             "beyond_strengths": list(p.beyond.strengths)}
    run, evals = dataclasses.asdict(p.base), dataclasses.asdict(p.eval)
    out = {}
    for name in names:
        for source in (sweep, run, evals):
            if name in source:
                value = source[name]
                out[name] = list(value) if isinstance(value, tuple) else value
                break
    return out
