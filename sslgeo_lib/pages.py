"""The book's pages, each spelled once: its notebook, glue prefix, claim, which runs it reads, its measure and
verdict functions, the readings that decide it, and whether it is in the core edition.

Notebooks take their prefix and computation from here (`readings`), the summary page and `sslgeo verdicts`
compute through the same `readings`, and the tests check the intro's tables and the tables of contents against
this registry. A new claim is one `Page` here plus one notebook.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import pandas as pd

from sslgeo_lib import claims, measures
from sslgeo_lib.presets import Preset, TheorySettings, theory_settings
from sslgeo_lib.stats import ClaimResult
from sslgeo_lib.store import find_entry
from sslgeo_lib.sweep import gate_of, learning_table, shape_gate, sweep
from sslgeo_lib.synthetic import theory_tables, theory_verdicts

# which runs a page reads: the main sweep, C6's projector shapes, B1's objectives or B2's augmentation families
# (each beside the reference SimCLR runs), the toy problems of C7, or none (methods, summary: every page's)
RUNS = ("main", "shapes", "objectives", "families", "toy", "none")


class RunsMissing(Exception):
    """`readings(..., train=False)` of a page whose runs are not all stored."""


@dataclass(frozen=True)
class Page:
    key: str                 # the claim ("C1", "B1", ...) or the page's name ("methods", "summary")
    notebook: str            # book/<notebook>.ipynb
    prefix: str              # every glue key of the page starts with it ("c1", "c1_trend", "c1_ci", ...)
    title: str               # the claim in words
    core: bool               # in the core edition (_toc_core.yml)
    runs: str                # one of RUNS
    measure: Callable | None = None   # (runs, EvalSettings) -> table (main and shapes pages)
    verdicts: Callable | None = None  # (table, gate) -> {reading: ClaimResult}
    deciding: tuple[str, ...] = ("primary",)  # the readings rule v3 decides the claim by (the rest are secondary)
    group: str | None = None  # B1/B2: the RunConfig field the groups differ in

    @property
    def file(self) -> str:
        return f"{self.notebook}.ipynb"

    @property
    def is_claim(self) -> bool:
        return self.verdicts is not None or self.runs in ("toy", "objectives", "families")

    def __post_init__(self):
        if self.runs not in RUNS:
            raise ValueError(f"page {self.key}: runs={self.runs!r} is unknown; accepted: {', '.join(RUNS)}")


GROUP_READINGS = tuple(claims.PRIMARY)  # B1 and B2 read C1-C5 across their groups

PAGES: dict[str, Page] = {p.key: p for p in (
    Page("methods", "methods", "m", "Methods: data, runs, the verdict rule and its calibration", True, "none"),
    Page("C1", "c1_transfer", "c1", "The projector transfers worse than the encoder, more so under stronger "
         "augmentation", True, "main", measures.transfer_table, claims.transfer_verdicts,
         ("primary", "trend", "step", "knn", "knn_trend", "knn_step")),
    Page("C2", "c2_invariance", "c2", "Stronger augmentation makes the projector, not the encoder, invariant", True,
         "main", measures.invariance_table, claims.invariance_verdicts, ("primary", "fixed", "trend", "step")),
    Page("C3", "c3_dimension", "c3", "The projector maps into a low-dimensional space, lower under stronger "
         "augmentation", True, "main", measures.dimension_table, claims.dimension_verdicts,
         ("primary", "trend", "step")),
    Page("C4", "c4_tangent", "c4", "That space is a noisy estimate of the data's tangent plane in the encoder "
         "space", True, "main", measures.tangent_table, claims.tangent_verdicts, ("primary", "same_class", "rho")),
    Page("C5", "c5_information", "c5", "The projector eliminates information (here: about the augmentation)", True,
         "main", measures.retention_table, claims.retention_verdicts, ("primary", "trend", "step")),
    Page("C6", "c6_projector", "c6", "Projector width and depth change the picture; without a projector, the "
         "encoder itself becomes invariant", False, "shapes", measures.shape_table, claims.shape_verdicts,
         ("primary", "rank", "transfer")),
    Page("C7", "c7_theory", "c7", "Theory: collapse where augmentation outweighs data, checked exactly", True, "toy"),
    Page("summary", "summary", "summary", "Every claim's primary reading", True, "none"),
    Page("B1", "b1_objectives", "b1", "Is the projector's role specific to contrastive learning? VICReg, Barlow "
         "Twins, BYOL", False, "objectives", deciding=GROUP_READINGS, group="method"),
    Page("B2", "b2_augmentations", "b2", "Which augmentation drives it: crop, colour or flip alone", False,
         "families", deciding=GROUP_READINGS, group="augment_family"),
    Page("B4", "b4_progress", "b4", "Do the effects grow or fade as training goes on?", False, "main",
         measures.progress_table, claims.progress_verdicts),
)}

CLAIMS = tuple(k for k, p in PAGES.items() if p.is_claim)       # C1..C7, B1, B2, B4
CORE_CLAIMS = tuple(k for k in CLAIMS if PAGES[k].core)         # the core edition's claims


def page(key: str) -> Page:
    """The page of claim or name `key`; an unknown key is an error that lists the pages."""
    try:
        return PAGES[key]
    except KeyError:
        raise KeyError(f"no page {key!r}; the pages are {', '.join(PAGES)}") from None


@dataclass
class Readings:
    """What a page computes: its runs, its table (C7: (linear, toy)), its learned gate (B1/B2: one per group;
    None where ungated or untrained-free), its verdicts {reading: ClaimResult} and, for B1/B2, each group's."""

    runs: list = field(default_factory=list)
    table: object = None
    gate: object = None
    verdicts: dict[str, ClaimResult] = field(default_factory=dict)
    by_group: dict[str, dict[str, ClaimResult]] = field(default_factory=dict)
    learning: pd.DataFrame | None = None


def readings(key: str, p: Preset | None = None, gated: bool = True, theory: TheorySettings | None = None,
             train: bool = True, runs: list | None = None) -> Readings:
    """Page `key`'s readings on preset `p` (C7: on `theory`, else `p`'s theory settings), exactly as its page
    computes them; `gated=False` drops the learned gate (what g0 alone decides). With `train=False` a page
    whose runs are not all stored raises RunsMissing instead of training them. `runs`: the page's runs, when the
    caller has them already (pages reading the same sweep share one load)."""
    pg = page(key)
    if pg.runs == "toy":
        t = theory if theory is not None else theory_settings(p.name)
        table = theory_tables(t)
        return Readings(table=table, verdicts=theory_verdicts(*table))
    if pg.runs == "none":
        raise ValueError(f"page {key} has no verdicts of its own")
    configs = {"main": p.configs, "shapes": p.shape_configs,
               "objectives": lambda: p.reference_configs() + p.objective_configs(),
               "families": lambda: p.reference_configs() + p.family_configs()}[pg.runs]()
    if not train:
        if any(find_entry(c) is None for c in configs):
            raise RunsMissing(f"page {key}'s runs are not all stored")
    runs = sweep(p, configs=configs) if runs is None else runs
    if pg.group is None:
        gate = (shape_gate(runs, p.eval) if pg.runs == "shapes" else gate_of(runs, p.eval)) if gated else None
        table = pg.measure(runs, p.eval)
        return Readings(runs, table, gate, pg.verdicts(table, gate=gate))
    table = measures.group_table(runs, p.eval, (pg.group,))
    learning = learning_table(runs, p.eval)
    gates = claims.group_gates(learning, pg.group) if gated else None
    return Readings(runs, table, gates, *_group_verdicts(pg, p, table, gates), learning)


def _group_verdicts(pg: Page, p: Preset, table: pd.DataFrame, gates: dict | None):
    """B1 / B2: ({"primary": C2 across the groups, "C1": ..., "C5": ...}, {group: {claim: ClaimResult}})."""
    groups = p.beyond.methods if pg.group == "method" else p.beyond.families
    word = "every objective" if pg.group == "method" else "every family"
    by_group = claims.group_verdicts(table, pg.group, gates)
    headline = {c: claims.across_groups({g: by_group[g][c] for g in groups}, c,
                                        f"{measures.SHAPE_STATISTICS[c]}, {word}") for c in GROUP_READINGS}
    return {"primary": headline["C2"], **headline}, by_group


def ungated_verdicts(key: str, p: Preset, r: Readings) -> dict[str, ClaimResult]:
    """Page `key`'s verdicts from the table of its readings `r` with no learned gate: what
    `readings(key, p, gated=False)` gives, without computing the table again."""
    pg = page(key)
    if pg.runs in ("toy", "none"):
        raise ValueError(f"page {key} has no learned gate to drop")
    return pg.verdicts(r.table, gate=None) if pg.group is None else _group_verdicts(pg, p, r.table, None)[0]
