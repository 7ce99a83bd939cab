"""Every claim's primary verdict in one place: what the summary page plots, and the machine-readable record of a
preset's verdicts with its provenance (`sslgeo verdicts`, which the GPU check writes)."""
from __future__ import annotations

import math
import platform
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
    from sslgeo_lib.store import check_entry, find_entry
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
    if shapes and all(check_entry(find_entry(c), c) is None for c in configs):
        out["C6"] = claims.shape_verdicts(measures.shape_table(sweep(p, configs=configs), ev))["primary"]
    return {c: out[c] for c in sorted(out)}


def verdict_record(p: Preset, results: dict[str, ClaimResult]) -> dict:
    """A JSON-able record of `results`: each claim's statistic, estimate, interval, negligible band, verdict and
    its words, and the provenance (code commit, device, package versions, the runs behind it and their speed)."""
    from sslgeo_lib.provenance import PACKAGES, device_name, git_state, package_version
    from sslgeo_lib.store import load_run
    from sslgeo_lib.training.loop import default_device

    sha, dirty = git_state()
    runs = [r for r in map(load_run, p.configs()) if r is not None]
    number = lambda x: None if x is None or not math.isfinite(x) else round(float(x), 6)  # noqa: E731 (JSON: no NaN)
    return {
        "preset": p.name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": sha, "uncommitted_changes": dirty,
        "device": device_name(default_device()),
        "python": platform.python_version(), "packages": {k: package_version(k) for k in PACKAGES},
        "sweep": {"strengths": list(p.strengths), "seeds": list(p.seeds), "encoder": p.base.encoder,
                  "epochs": p.base.epochs, "n_train": p.base.n_train, "eval": p.eval.__dict__ | {
                      "probe_c_grid": list(p.eval.probe_c_grid)}},
        "runs": [{"id": r.id, "strength": r.config.strength, "seed": r.config.seed,
                  "images_per_s": number(r.metrics["images_per_s"]), "train_seconds": number(r.metrics["train_seconds"]),
                  "knn": number(r.metrics["knn"][-1]), "device": r.provenance["device_name"]} for r in runs],
        "claims": [{"claim": r.claim, "statistic": r.statistic, "estimate": number(r.estimate), "low": number(r.low),
                    "high": number(r.high), "delta": number(r.delta), "direction": r.direction, "n_seeds": r.n_seeds,
                    "verdict": r.verdict, "text": r.verdict_text()} for r in results.values()],
    }
