"""Aggregation over seeds, confidence intervals, trend tests and the verdict rule of CLAIMS.md.

Verdict rule, for a statistic with a predicted sign (direction +1: predicted > null, -1: predicted < null):
  supported     the 95% CI excludes the null in the predicted direction (at every strength, for claims
                made "for every s > 0");
  contradicted  a 95% CI excludes the null in the opposite direction (one counterexample refutes a claim
                made for every s);
  inconclusive  otherwise, and always when fewer than 2 seeds ran.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"
MIN_SEEDS = 2


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student-t interval over independent seeds; (mean, nan, nan) for fewer than 2."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(v.mean())
    if len(v) < MIN_SEEDS:
        return m, float("nan"), float("nan")
    half = sps.t.ppf(0.5 + confidence / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return m, m - half, m + half


def ci_table(df: pd.DataFrame, value: str, by=("strength",)) -> pd.DataFrame:
    """Mean, 95% CI and seed count of column `value`, grouped by `by`."""
    rows = []
    for key, g in df.groupby(list(by), sort=True):
        m, lo, hi = mean_ci(g[value])
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key)), "mean": m, "low": lo, "high": hi, "n_seeds": int(g[value].notna().sum())})
    return pd.DataFrame(rows)


def bootstrap_slope(df: pd.DataFrame, value: str, x: str = "strength", n_boot: int = 2000,
                    seed: int = 0, confidence: float = 0.95) -> tuple[float, float, float]:
    """(slope, low, high) of the least-squares line of `value` on `x`, with a percentile bootstrap that
    resamples seeds within each x (a stratified bootstrap over independent runs)."""
    df = df[[x, value]].dropna()
    groups = [g[value].to_numpy() for _, g in df.groupby(x, sort=True)]
    xs = np.array(sorted(df[x].unique()), dtype=float)
    if len(xs) < 2:
        return float("nan"), float("nan"), float("nan")
    slope = float(np.polyfit(df[x].to_numpy(float), df[value].to_numpy(float), 1)[0])
    if min(len(g) for g in groups) < MIN_SEEDS:
        return slope, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    for b in range(n_boot):
        samples = [rng.choice(g, len(g)) for g in groups]
        bx = np.concatenate([np.full(len(s), xv) for s, xv in zip(samples, xs)])
        boots[b] = np.polyfit(bx, np.concatenate(samples), 1)[0]
    lo, hi = np.percentile(boots, [50 * (1 - confidence), 50 * (1 + confidence)])
    return slope, float(lo), float(hi)


def verdict_from_cis(lows, highs, direction: int, null: float = 0.0) -> str:
    """Apply the verdict rule to one or more CIs (all must support; one opposite CI contradicts)."""
    lows, highs = np.asarray(lows, float), np.asarray(highs, float)
    if len(lows) == 0 or np.isnan(lows).any() or np.isnan(highs).any():
        return INCONCLUSIVE
    above, below = lows > null, highs < null
    agree, oppose = (above, below) if direction > 0 else (below, above)
    if agree.all():
        return SUPPORTED
    if oppose.any():
        return CONTRADICTED
    return INCONCLUSIVE


@dataclass(frozen=True)
class ClaimResult:
    """One claim's primary statistic and verdict, ready to glue."""

    claim: str
    statistic: str       # what was measured, in words
    estimate: float      # headline value (mean over seeds; the smallest-margin strength for per-s claims)
    low: float
    high: float
    verdict: str
    n_seeds: int

    def ci_text(self, digits: int = 3) -> str:
        if np.isnan(self.low):
            return f"{self.estimate:.{digits}f} (no CI: {self.n_seeds} seed)"
        return f"{self.estimate:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"

    def verdict_text(self) -> str:
        if self.n_seeds < MIN_SEEDS:
            return f"{self.verdict} (fewer than {MIN_SEEDS} seeds ran)"
        return self.verdict


def per_strength_table(df: pd.DataFrame, value: str, direction: int, null: float = 0.0) -> pd.DataFrame:
    """Mean, 95% CI and the verdict rule applied at each strength s > 0 on its own."""
    table = ci_table(df[df["strength"] > 0], value)
    table["verdict"] = [verdict_from_cis([lo], [hi], direction, null) for lo, hi in zip(table["low"], table["high"])]
    return table


def per_strength_claim(claim: str, statistic: str, df: pd.DataFrame, value: str, direction: int,
                       null: float = 0.0) -> ClaimResult:
    """A claim predicted for every s > 0: verdict over the per-strength CIs of `value`; the headline is
    the strength whose CI bound lies closest to the null (the weakest evidence)."""
    table = ci_table(df[df["strength"] > 0], value)
    verdict = verdict_from_cis(table["low"], table["high"], direction, null)
    n_seeds = int(table["n_seeds"].min()) if len(table) else 0
    if len(table) == 0:
        return ClaimResult(claim, statistic, float("nan"), float("nan"), float("nan"), INCONCLUSIVE, 0)
    bound = table["low"] if direction > 0 else -table["high"]
    row = table.iloc[int(np.nanargmin(bound.to_numpy())) if bound.notna().any() else 0]
    return ClaimResult(claim, f"{statistic} (weakest s = {row['strength']:g})", row["mean"], row["low"],
                       row["high"], verdict, n_seeds)


def trend_claim(claim: str, statistic: str, df: pd.DataFrame, value: str, direction: int) -> ClaimResult:
    """A claim about a trend over strength: bootstrap CI of the slope of `value` on s."""
    slope, lo, hi = bootstrap_slope(df, value)
    n_seeds = int(df.groupby("strength")[value].count().min()) if len(df) else 0
    return ClaimResult(claim, f"slope of {statistic} over s", slope, lo, hi,
                       verdict_from_cis([lo], [hi], direction), n_seeds)
