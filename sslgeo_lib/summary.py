"""Every claim's primary verdict in one place: what the summary page plots, and the machine-readable record of a
preset's verdicts with its provenance (`sslgeo verdicts`, which the GPU check writes)."""
from __future__ import annotations

import dataclasses
import math
import time

import pandas as pd

from sslgeo_lib import claims, measures
from sslgeo_lib.presets import Preset, theory_settings
from sslgeo_lib.provenance import device_name, environment
from sslgeo_lib.stats import ClaimResult
from sslgeo_lib.store import find_entry, load_run
from sslgeo_lib.sweep import gate_of, learning_table, shape_gate, sweep
from sslgeo_lib.synthetic import theory_tables, theory_verdicts
from sslgeo_lib.training.loop import default_device

CORE = ("C1", "C2", "C3", "C4", "C5", "C7")


def primary_results(p: Preset, shapes: bool = True) -> dict[str, ClaimResult]:
    """Each claim's primary reading, computed exactly as on its page (learned gate included): C1-C5 from the
    preset's sweep (trained where missing), C7 from the preset's theory settings, and C6 when `shapes` and its
    runs are all stored (C6 never trains here)."""

    runs, ev = sweep(p), p.eval
    gate = gate_of(runs)
    out = {
        "C1": claims.transfer_verdicts(measures.transfer_table(runs, ev), gate)["primary"],
        "C2": claims.invariance_verdicts(measures.invariance_table(runs, ev), gate)["primary"],
        "C3": claims.dimension_verdicts(measures.dimension_table(runs, ev), gate)["primary"],
        "C4": claims.tangent_verdicts(measures.tangent_table(runs, ev), gate)["primary"],
        "C5": claims.retention_verdicts(measures.retention_table(runs, ev), gate)["primary"],
    }
    out["C7"] = theory_verdicts(*theory_tables(theory_settings(p.name)))["primary"]
    configs = p.shape_configs()
    if shapes and all(find_entry(c) is not None for c in configs):
        shape_runs = sweep(p, configs=configs)
        out["C6"] = claims.shape_verdicts(measures.shape_table(shape_runs, ev), gate=shape_gate(shape_runs))["primary"]
    return {c: out[c] for c in sorted(out)}


def verdict_record(p: Preset, results: dict[str, ClaimResult]) -> dict:
    """A JSON-able record of `results`: each claim's statistic, estimate, interval (and what it covers),
    negligible band, verdict and its words; the preset's sweep and evaluation settings; the environment (code
    commit, packages, the device the analysis ran on) and the runs behind it (where and how fast each trained)."""


    number = lambda x: None if x is None or not math.isfinite(x) else round(float(x), 6)  # noqa: E731 (JSON: no NaN)
    runs = [load_run(c) for c in p.configs()]  # all stored: `results` were computed from them
    return {
        "preset": p.name, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **environment(), "analysis_device": device_name(default_device()),
        "sweep": {"strengths": list(p.strengths), "seeds": list(p.seeds), "base": p.base.to_dict(),
                  "eval": dataclasses.asdict(p.eval)},
        "runs": [{"id": r.id, "strength": r.config.strength, "seed": r.config.seed,
                  "images_per_s": number(r.metrics["images_per_s"]),
                  "train_seconds": number(r.metrics["train_seconds"]),
                  "knn": number(r.metrics["knn"][-1]), "device": r.provenance["device_name"]} for r in runs],
        "claims": [{"claim": r.claim, "statistic": r.statistic, "estimate": number(r.estimate), "low": number(r.low),
                    "high": number(r.high), "covers": r.covers, "delta": number(r.delta), "direction": r.direction,
                    "n_seeds": r.n_seeds, "verdict": r.verdict, "text": r.verdict_text()} for r in results.values()],
    }


# The readings of each claim that rule v3 decides a claim by (its primary and the learned parts and headlines
# beside it); the other readings (raw statistics, v1 rows, sensitivity rows) are secondary.
DECIDING = {"C1": ("primary", "trend", "step", "knn", "knn_trend", "knn_step"),
            "C2": ("primary", "fixed", "trend", "step"),
            "C3": ("primary", "trend", "step"),
            "C4": ("primary", "same_class", "rho"),
            "C5": ("primary", "trend", "step"),
            "C6": ("primary", "rank", "transfer"),
            "B1": ("C1", "C2", "C3", "C4", "C5")}


def every_reading(p: Preset, gated: bool = True) -> dict[str, dict[str, ClaimResult]]:
    """Every reading of C1-C6 and B1 on preset `p`'s runs (trained where missing), each computed by its page's
    verdict code: {"C1": {reading: ClaimResult}, ..., "C6": ..., "B1": {claim: across the objectives}}; with
    `gated`, the learned gate of each sweep applies, else none does (what g0 alone decides)."""

    runs, ev = sweep(p), p.eval
    gate = gate_of(runs) if gated else None
    out = {"C1": claims.transfer_verdicts(measures.transfer_table(runs, ev), gate),
           "C2": claims.invariance_verdicts(measures.invariance_table(runs, ev), gate),
           "C3": claims.dimension_verdicts(measures.dimension_table(runs, ev), gate),
           "C4": claims.tangent_verdicts(measures.tangent_table(runs, ev), gate),
           "C5": claims.retention_verdicts(measures.retention_table(runs, ev), gate)}
    shape_runs = sweep(p, configs=p.shape_configs())
    out["C6"] = claims.shape_verdicts(measures.shape_table(shape_runs, ev),
                                      gate=shape_gate(shape_runs) if gated else None)
    b1_runs = sweep(p, configs=p.reference_configs() + p.objective_configs())
    gates = claims.group_gates(learning_table(b1_runs), "method") if gated else None
    by_method = claims.group_verdicts(measures.group_table(b1_runs, ev, ("method",)), "method", gates)
    out["B1"] = {c: claims.across_groups({m: by_method[m][c] for m in p.beyond.methods}, c,
                                         f"{measures.SHAPE_STATISTICS[c]}, every objective") for c in claims.PRIMARY}
    return out


def readings_frame(readings: dict[str, dict[str, ClaimResult]]) -> "pd.DataFrame":
    """`every_reading`'s results as rows: claim, reading, deciding (one of DECIDING), statistic, estimate
    [interval], verdict."""

    return pd.DataFrame([{"claim": c, "reading": k, "deciding": k in DECIDING[c], "statistic": r.statistic,
                          "estimate": r.ci_text(), "verdict": r.verdict}
                         for c, rs in readings.items() for k, r in rs.items()])
