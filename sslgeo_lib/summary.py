"""Every claim's primary verdict in one place: what the summary page plots, and the machine-readable record of a
preset's verdicts with its provenance (`sslgeo verdicts`, which the GPU check writes)."""
from __future__ import annotations

import math
import time

from sslgeo_lib.presets import Preset
from sslgeo_lib.stats import ClaimResult

CORE = ("C1", "C2", "C3", "C4", "C5", "C7")


def primary_results(p: Preset, shapes: bool = True) -> dict[str, ClaimResult]:
    """Each claim's primary reading, computed exactly as on its page: C1-C5 from the preset's sweep (trained where
    missing), C7 from the preset's theory settings, and C6 when `shapes` and its runs are all stored (C6 never
    trains here)."""
    from sslgeo_lib import claims, measures
    from sslgeo_lib.presets import theory_settings
    from sslgeo_lib.store import find_entry
    from sslgeo_lib.sweep import sweep
    from sslgeo_lib.synthetic import theory_tables, theory_verdicts

    runs, ev = sweep(p), p.eval
    out = {
        "C1": claims.transfer_verdicts(measures.transfer_table(runs, ev))["primary"],
        "C2": claims.invariance_verdicts(measures.invariance_table(runs, ev))["primary"],
        "C3": claims.dimension_verdicts(measures.dimension_table(runs, ev))["primary"],
        "C4": claims.tangent_verdicts(measures.tangent_table(runs, ev))["primary"],
        "C5": claims.retention_verdicts(measures.retention_table(runs, ev))["primary"],
    }
    out["C7"] = theory_verdicts(*theory_tables(theory_settings(p.name)))["primary"]
    configs = p.shape_configs()
    if shapes and all(find_entry(c) is not None for c in configs):
        out["C6"] = claims.shape_verdicts(measures.shape_table(sweep(p, configs=configs), ev))["primary"]
    return {c: out[c] for c in sorted(out)}


def verdict_record(p: Preset, results: dict[str, ClaimResult]) -> dict:
    """A JSON-able record of `results`: each claim's statistic, estimate, interval (and what it covers),
    negligible band, verdict and its words; the preset's sweep and evaluation settings; the environment (code
    commit, packages, the device the analysis ran on) and the runs behind it (where and how fast each trained)."""
    import dataclasses

    from sslgeo_lib.provenance import device_name, environment
    from sslgeo_lib.store import load_run
    from sslgeo_lib.training.loop import default_device

    number = lambda x: None if x is None or not math.isfinite(x) else round(float(x), 6)  # noqa: E731 (JSON: no NaN)
    runs = [load_run(c) for c in p.configs()]  # all stored: `results` were computed from them
    return {
        "preset": p.name, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **environment(), "analysis_device": device_name(default_device()),
        "sweep": {"strengths": list(p.strengths), "seeds": list(p.seeds), "base": p.base.to_dict(),
                  "eval": dataclasses.asdict(p.eval)},
        "runs": [{"id": r.id, "strength": r.config.strength, "seed": r.config.seed,
                  "images_per_s": number(r.metrics["images_per_s"]), "train_seconds": number(r.metrics["train_seconds"]),
                  "knn": number(r.metrics["knn"][-1]), "device": r.provenance["device_name"]} for r in runs],
        "claims": [{"claim": r.claim, "statistic": r.statistic, "estimate": number(r.estimate), "low": number(r.low),
                    "high": number(r.high), "covers": r.covers, "delta": number(r.delta), "direction": r.direction,
                    "n_seeds": r.n_seeds, "verdict": r.verdict, "text": r.verdict_text()} for r in results.values()],
    }
