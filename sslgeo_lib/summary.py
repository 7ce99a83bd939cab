"""Every claim's primary verdict in one place: what the summary page plots, and the machine-readable record of a
preset's verdicts with its provenance (`sslgeo verdicts`, which the GPU check writes)."""
from __future__ import annotations

import dataclasses
import math
import time

import pandas as pd

from sslgeo_lib.pages import CLAIMS, CORE_CLAIMS, PAGES, RunsMissing, readings, ungated_verdicts
from sslgeo_lib.presets import Preset
from sslgeo_lib.provenance import device_name, environment
from sslgeo_lib.stats import ClaimResult
from sslgeo_lib.store import load_run
from sslgeo_lib.sweep import sweep
from sslgeo_lib.training.loop import default_device

PAPER = tuple(k for k in CLAIMS if k.startswith("C"))  # the paper's claims C1-C7 (B1-B4 go beyond it)
CORE = tuple(k for k in PAPER if k in CORE_CLAIMS)      # the core edition's: no C6


def primary_results(p: Preset, shapes: bool = True) -> dict[str, ClaimResult]:
    """Each of the paper's claims' primary reading, computed by its page's own computation (`pages.readings`,
    learned gate included): C1-C5 from the preset's sweep (trained where missing), C7 from the preset's theory
    settings, and C6 when `shapes` and its runs are all stored (C6 never trains here)."""
    out, main = {}, sweep(p)  # the main sweep, loaded once for every page that reads it
    for key in PAPER:
        if PAGES[key].runs == "shapes":
            if not shapes:
                continue
            try:
                out[key] = readings(key, p, train=False).verdicts["primary"]
            except RunsMissing:
                continue
        else:
            out[key] = readings(key, p, runs=main if PAGES[key].runs == "main" else None).verdicts["primary"]
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


# The readings that decide each claim (the rest: raw statistics, v1 rows, sensitivity rows, are secondary)
DECIDING = {k: PAGES[k].deciding for k in CLAIMS}
NULL_CLAIMS = ("C1", "C2", "C3", "C4", "C5", "C6", "B1")  # what an untrained sweep is read by (C7 trains no encoder)


def every_reading(p: Preset) -> tuple[dict[str, dict[str, ClaimResult]], dict[str, dict[str, ClaimResult]]]:
    """Every reading of C1-C6 and B1 on preset `p`'s runs (trained where missing), each computed by its page's
    own computation (`pages.readings`) once and read twice: (without any learned gate, what g0 alone decides;
    with each sweep's learned gate), each {"C1": {reading: ClaimResult}, ..., "B1": {claim: across the
    objectives}}."""
    ungated, gated, main = {}, {}, sweep(p)  # the main sweep, loaded once for every page that reads it
    for key in NULL_CLAIMS:
        r = readings(key, p, runs=main if PAGES[key].runs == "main" else None)
        ungated[key], gated[key] = (_shown(key, ungated_verdicts(key, p, r)), _shown(key, r.verdicts))
    return ungated, gated


def _shown(key: str, verdicts: dict[str, ClaimResult]) -> dict[str, ClaimResult]:
    """Every reading of a page; of B1 only its deciding ones (C1-C5 across the objectives; its primary reading is
    C2's, already among them)."""
    return {k: v for k, v in verdicts.items() if k in DECIDING[key] or PAGES[key].group is None}


def readings_frame(results: dict[str, dict[str, ClaimResult]]) -> "pd.DataFrame":
    """One of `every_reading`'s two results as rows: claim, reading, deciding (one of DECIDING), statistic, estimate
    [interval], verdict."""

    return pd.DataFrame([{"claim": c, "reading": k, "deciding": k in DECIDING[c], "statistic": r.statistic,
                          "estimate": r.ci_text(), "verdict": r.verdict}
                         for c, rs in results.items() for k, r in rs.items()])
