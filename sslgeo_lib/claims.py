"""Per-claim measurements over a trained sweep, as tidy tables, and each claim's verdict.

Every function takes the sweep's runs and the preset (for the evaluation sizes), computes per-run
values (cached in each run's store entry) and returns a DataFrame with one row per run x layer x setting,
columns `strength` and `seed` always present. Verdicts use `stats` (the rule of CLAIMS.md).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from sslgeo_lib import geometry, stats
from sslgeo_lib.config import Preset
from sslgeo_lib.embed import view_features
from sslgeo_lib.store import Run

FIXED_EVAL_STRENGTH = 1.0  # the evaluation strength shared by every run (CLAIMS.md C2, C5)


def _row(run: Run, **values) -> dict:
    return {"strength": run.config.strength, "seed": run.config.seed, **values}


# --- C2: invariance ----------------------------------------------------------------------------

def invariance_table(runs: list[Run], preset: Preset) -> pd.DataFrame:
    """Invariance I and mean view cosine of h and z, at s_eval = s_train ("train") and s_eval = 1 ("1").

    Columns: strength, seed, eval ("train" | "1"), layer ("h" | "z"), invariance, v_aug, v_tot, cosine.
    """
    rows = []
    for run in runs:
        for label, s_eval in (("train", run.config.strength), ("1", FIXED_EVAL_STRENGTH)):
            views = view_features(run, preset.n_test, s_eval, preset.n_views)
            for layer in ("h", "z"):
                rows.append(_row(run, eval=label, layer=layer, **geometry.invariance(views[layer]),
                                 cosine=geometry.view_cosine(views[layer])))
    return pd.DataFrame(rows)


def layer_difference(df: pd.DataFrame, value: str, keys=("eval",), a: str = "z", b: str = "h") -> pd.DataFrame:
    """Per run, value(layer a) - value(layer b): columns strength, seed, *keys, `value`."""
    idx = ["strength", "seed", *keys]
    wide = df.pivot_table(index=idx, columns="layer", values=value).reset_index()
    wide[value] = wide[a] - wide[b]
    return wide[idx + [value]]


def invariance_verdicts(df: pd.DataFrame) -> dict[str, stats.ClaimResult]:
    """C2: primary = I(z) - I(h) > 0 at every s > 0 with s_eval = s_train; also the same at s_eval = 1,
    and the trend (slope over s) of I(z) - I(h) at the fixed s_eval = 1, predicted > 0."""
    diff = layer_difference(df, "invariance")
    at_train, at_one = diff[diff["eval"] == "train"], diff[diff["eval"] == "1"]
    what = "I(z) - I(h)"
    return {
        "primary": stats.per_strength_claim("C2", f"{what}, s_eval = s_train", at_train, "invariance", +1),
        "fixed_eval": stats.per_strength_claim("C2", f"{what}, s_eval = 1", at_one, "invariance", +1),
        "trend": stats.trend_claim("C2", f"{what} at s_eval = 1", at_one, "invariance", +1),
    }
