"""Aggregation over seeds, confidence intervals, trend tests and the verdict rule v2 of CLAIMS.md.

Outcome of one interval [low, high] for a statistic predicted to lie on side `direction` (+1 above, -1 below)
of `null`, with smallest effect of interest `delta`, checked in this order:
  inconclusive  no interval (fewer than 2 seeds ran);
  negligible    the interval lies inside (null - delta, null + delta): too small to matter, whatever the sign;
  supported     the interval excludes the null on the predicted side;
  contradicted  the interval excludes the null on the other side;
  inconclusive  otherwise.
A claim "for every s > 0" over m strengths uses Bonferroni intervals (level 1 - 0.05/m); it is supported if every
strength is, contradicted if any is, negligible / inconclusive if all are, and mixed otherwise; its text names the
ranges of s where each outcome holds. Trends: OLS slope over all runs, t-interval with n - 2 degrees of freedom,
negligible band delta / 1.5 per unit s. The unit of replication is the training seed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, stats as sps

RULE_VERSION = "v2"
SUPPORTED, CONTRADICTED, NEGLIGIBLE, INCONCLUSIVE, MIXED = "supported", "contradicted", "negligible", "inconclusive", "mixed"
MIN_SEEDS = 2
LEVEL = 0.95
COVERS = "training and evaluation randomness"

DELTAS: dict[str, float] = {
    "C1": 0.01,                      # linear-probe accuracy gap acc(h) - acc(z), fraction (one point)
    "C2": 0.02,                      # invariance gap I(z) - I(h), unitless in [-1, 1]
    "C3": float(np.log(1.1)),        # log(erank(z) / erank(h)), natural log of a ratio
    "C3_trend": 0.05,                # slope of C3's log ratio over s, per unit s (CLAIMS fixes it; not delta / 1.5)
    "C4_locality": 0.02,             # alignment gap alpha(A_i, T_i) - alpha(A_i, T_j), unitless in [-1, 1]
    "C4_rho": float(np.log(1.25)),   # log rho, natural log of a gain ratio
    "C5": 0.02,                      # retention(h) - retention(z), held-out R^2 or accuracy
    "C7": 0.05,                      # fit improvement over the data-only alternative, dex (log10 units)
}   # C6 compares C1-C3's statistics between architectures and uses their deltas.
_DESCRIPTIONS = {
    "C1": "linear-probe accuracy gap acc(h) - acc(z) (accuracy)",
    "C2": "invariance gap I(z) - I(h)",
    "C3": "log(erank(z) / erank(h))",
    "C3_trend": "slope of log(erank(z) / erank(h)) over s (per unit s)",
    "C4_locality": "locality gap alpha(A_i, T_i) - alpha(A_i, T_j) (alignment)",
    "C4_rho": "log rho, augmentation gain over data gain",
    "C5": "retention(h) - retention(z) (held-out R^2 or accuracy)",
    "C7": "fit improvement over the data-only alternative (dex)",
}
_ORDER = (CONTRADICTED, SUPPORTED, NEGLIGIBLE, INCONCLUSIVE)   # order of the clauses of a verdict text


def trend_delta(delta: float) -> float:
    """Negligible band of a slope over s (per unit s) for a statistic with smallest effect `delta`: delta / 1.5."""
    return delta / 1.5


def delta_table() -> pd.DataFrame:
    """One row per DELTAS key: key, description, delta, trend_delta (the band used for its slope over s)."""
    rows = []
    for key, delta in DELTAS.items():
        own = key.endswith("_trend")   # already a slope per unit s
        slope = delta if own else DELTAS.get(f"{key}_trend", trend_delta(delta))
        rows.append({"key": key, "description": _DESCRIPTIONS[key], "delta": delta, "trend_delta": slope})
    return pd.DataFrame(rows)


def mean_ci(values, level: float = LEVEL) -> tuple[float, float, float]:
    """(mean, low, high) of a 1-d array over seeds, NaNs dropped: Student-t interval with n - 1 degrees of
    freedom at `level`; (mean, nan, nan) for fewer than 2 values, all nan for none."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(v.mean())
    if len(v) < MIN_SEEDS:
        return m, float("nan"), float("nan")
    half = sps.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return m, float(m - half), float(m + half)


def ci_table(df: pd.DataFrame, value: str, by=("strength",), level: float = LEVEL) -> pd.DataFrame:
    """Columns *by, mean, low, high, n_seeds: mean_ci of column `value` in each group of `by` (sorted)."""
    rows = []
    for key, g in df.groupby(list(by), sort=True):
        m, lo, hi = mean_ci(g[value], level)
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key)), "mean": m, "low": lo, "high": hi, "n_seeds": int(g[value].notna().sum())})
    return pd.DataFrame(rows, columns=[*by, "mean", "low", "high", "n_seeds"])


def outcome(low: float, high: float, direction: int, delta: float, null: float = 0.0) -> str:
    """Outcome of one interval under rule v2 (module docstring): inconclusive if low or high is NaN, then
    negligible if null - delta < low and high < null + delta, then supported / contradicted if the interval
    excludes `null` on the predicted (direction +1: above, -1: below) / the other side, else inconclusive."""
    if np.isnan(low) or np.isnan(high):
        return INCONCLUSIVE
    if null - delta < low and high < null + delta:
        return NEGLIGIBLE
    above, below = low > null, high < null
    if (above and direction > 0) or (below and direction < 0):
        return SUPPORTED
    if above or below:
        return CONTRADICTED
    return INCONCLUSIVE


def ols_slope(df: pd.DataFrame, value: str, x: str = "strength", level: float = LEVEL) -> tuple[float, float, float]:
    """(slope, low, high): OLS slope of `value` on `x` over all rows (runs), rows with NaN dropped, with its
    t-interval on n - 2 degrees of freedom; nan slope with fewer than 2 distinct x, nan interval below 3 rows."""
    d = df[[x, value]].dropna()
    xs, ys = d[x].to_numpy(float), d[value].to_numpy(float)
    if len(np.unique(xs)) < 2:
        return float("nan"), float("nan"), float("nan")
    xc = xs - xs.mean()
    sxx = float(xc @ xc)
    slope = float(xc @ (ys - ys.mean()) / sxx)
    n = len(xs)
    if n < 3:
        return slope, float("nan"), float("nan")
    resid = ys - ys.mean() - slope * xc
    half = sps.t.ppf(0.5 + level / 2, n - 2) * np.sqrt(resid @ resid / (n - 2) / sxx)
    return slope, float(slope - half), float(slope + half)


def per_strength_table(df: pd.DataFrame, value: str, direction: int, delta: float, null: float = 0.0,
                       adjust: bool = True, family: int = 1) -> pd.DataFrame:
    """Columns strength, mean, low, high, n_seeds, level, outcome for each strength s > 0 of df (columns strength,
    seed, value); with adjust, Bonferroni intervals at level 1 - 0.05 / m over the m strengths s > 0, times
    `family` when the same claim is also read in that many groups (objectives, augmentation families)."""
    pos = df[df["strength"] > 0]
    m = pos["strength"].nunique() * family
    level = 1 - (1 - LEVEL) / m if adjust and m > 0 else LEVEL
    table = ci_table(pos, value, level=level)
    table["level"] = level
    table["outcome"] = [outcome(lo, hi, direction, delta, null) for lo, hi in zip(table["low"], table["high"])]
    return table


@dataclass(frozen=True)
class ClaimResult:
    """One claim's primary statistic, interval and verdict (one of the five words), ready to glue."""

    claim: str
    statistic: str       # what was measured, in words
    estimate: float      # headline value (the weakest strength for claims over s)
    low: float
    high: float
    verdict: str
    n_seeds: int         # fewest seeds behind any interval
    delta: float         # the negligible band used (per unit s for trends)
    text: str            # the verdict in words, e.g. "supported for s >= 0.5; negligible at 0.25"
    covers: str          # what the interval covers
    table: pd.DataFrame | None = field(default=None, compare=False, repr=False)
    direction: int = +1  # the predicted sign of the statistic

    def ci_text(self, digits: int = 3) -> str:
        """'0.056 [0.025, 0.088]', or '0.056 (no CI: 1 seed)' without an interval."""
        if np.isnan(self.low) or np.isnan(self.high):
            return f"{self.estimate:.{digits}f} (no CI: {_seeds(self.n_seeds)})"
        return f"{self.estimate:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"

    def verdict_text(self) -> str:
        """self.text, plus ' (fewer than 2 seeds ran)' when n_seeds < 2."""
        return self.text + (f" (fewer than {MIN_SEEDS} seeds ran)" if self.n_seeds < MIN_SEEDS else "")


def _seeds(n: int, hi: int | None = None) -> str:
    return f"{n}-{hi} seeds" if hi is not None and hi != n else f"{n} seed{'' if n == 1 else 's'}"


def _pct(level: float) -> str:
    return f"{100 * level:.4g}%"


def combine_outcomes(outcomes: list[str]) -> str:
    """A claim's verdict from its parts' outcomes: supported if all are, contradicted if any is, negligible or
    inconclusive if all are, else mixed."""
    if outcomes and all(o == SUPPORTED for o in outcomes):
        return SUPPORTED
    if CONTRADICTED in outcomes:
        return CONTRADICTED
    for same in (NEGLIGIBLE, INCONCLUSIVE):
        if all(o == same for o in outcomes):
            return same
    return MIXED


def _range(i: int, j: int, s: list[float]) -> str:
    """Words for the consecutive strengths s[i..j] among the sorted strengths s."""
    if i == 0 and j == len(s) - 1 and j > 0:
        return "for every s > 0"
    if i == j:
        return f"at {s[i]:g}"
    if j == len(s) - 1:
        return f"for s >= {s[i]:g}"
    return f"for 0 < s <= {s[j]:g}" if i == 0 else f"for {s[i]:g} <= s <= {s[j]:g}"


def _ranges_text(strengths, outcomes) -> str:
    """'supported for s >= 0.5; negligible at 0.25': consecutive strengths with one outcome grouped, one clause per
    outcome (contradicted, supported, negligible, inconclusive), a clause's groups joined by 'and'."""
    s, runs = list(strengths), []
    for k, o in enumerate(outcomes):
        if runs and runs[-1][2] == o:
            runs[-1][1] = k
        else:
            runs.append([k, k, o])
    clauses = []
    for o in _ORDER:
        groups = [(i, j) for i, j, oo in runs if oo == o]
        if not groups:
            continue
        if len(groups) > 1 and all(i == j for i, j in groups):
            names = [f"{s[i]:g}" for i, _ in groups]
            clauses.append(f"{o} at {', '.join(names[:-1])} and {names[-1]}")
        else:
            clauses.append(f"{o} " + " and ".join(_range(i, j, s) for i, j in groups))
    return "; ".join(clauses)


def per_strength_claim(claim: str, statistic: str, df: pd.DataFrame, value: str, direction: int, delta: float,
                       null: float = 0.0, family: int = 1) -> ClaimResult:
    """A claim 'for every s > 0' on df (columns strength, seed, value; s = 0 rows ignored): Bonferroni intervals and
    outcomes per strength (per_strength_table); verdict supported if all are, contradicted if any is, negligible /
    inconclusive if all are, else mixed. The headline is the strength whose bound lies closest to the null on the
    predicted side (the weakest evidence)."""
    table = per_strength_table(df, value, direction, delta, null, family=family)
    if len(table) == 0:
        return ClaimResult(claim, statistic, float("nan"), float("nan"), float("nan"), INCONCLUSIVE, 0, delta,
                           "inconclusive: no strength s > 0 ran", "no interval", table, direction)
    margin = (table["low"] - null) if direction > 0 else (null - table["high"])
    if margin.isna().all():
        margin = direction * (table["mean"] - null)
    row = table.iloc[int(np.nanargmin(margin.to_numpy(float)))]
    lo_n, hi_n, m, level = int(table["n_seeds"].min()), int(table["n_seeds"].max()), len(table), table["level"].iloc[0]
    covers = f"{_pct(LEVEL)} t-interval over {_seeds(lo_n, hi_n)} ({COVERS})"
    if m * family > 1:
        over = f"{m} strength{'s' if m > 1 else ''}" + (f" x {family} groups" if family > 1 else "")
        covers += f", Bonferroni-adjusted over {over} (level {_pct(level)})"
    outcomes = table["outcome"].tolist()
    return ClaimResult(claim, f"{statistic} (weakest s = {row['strength']:g})", float(row["mean"]), float(row["low"]),
                       float(row["high"]), combine_outcomes(outcomes), lo_n, delta,
                       _ranges_text(table["strength"], outcomes), covers, table, direction)


def trend_claim(claim: str, statistic: str, df: pd.DataFrame, value: str, direction: int, delta: float, *,
                slope_delta: float | None = None) -> ClaimResult:
    """A claim about the trend of `value` over s (df columns strength, seed, value; all strengths, s = 0 included):
    OLS slope and t-interval (ols_slope), outcome() with band slope_delta (default trend_delta(delta), per unit s);
    inconclusive with no interval when some strength has fewer than 2 seeds."""
    band = trend_delta(delta) if slope_delta is None else slope_delta
    d = df[["strength", value]].dropna()
    n_seeds = int(d.groupby("strength")[value].count().min()) if len(d) else 0
    slope, lo, hi = ols_slope(d, value)
    if n_seeds < MIN_SEEDS:
        lo = hi = float("nan")
    verdict = outcome(lo, hi, direction, band)
    s = sorted(d["strength"].unique())
    span = f" over {s[0]:g} <= s <= {s[-1]:g}" if len(s) > 1 else ""
    covers = (f"{_pct(LEVEL)} t-interval of the OLS slope over {len(d)} runs ({len(s)} strengths x {_seeds(n_seeds)}, "
              f"{len(d) - 2} degrees of freedom; {COVERS})")
    return ClaimResult(claim, f"slope of {statistic} over s", slope, lo, hi, verdict, n_seeds, band,
                       f"{verdict} for the trend{span}", covers, direction=direction)


def single_claim(claim: str, statistic: str, values, direction: int, delta: float, null: float = 0.0) -> ClaimResult:
    """A claim on one statistic per seed (1-d values, no strengths): plain 95% t-interval and outcome()."""
    m, lo, hi = mean_ci(values)
    n = int(np.isfinite(np.asarray(values, float)).sum())
    verdict = outcome(lo, hi, direction, delta, null)
    return ClaimResult(claim, statistic, m, lo, hi, verdict, n, delta, verdict,
                       f"{_pct(LEVEL)} t-interval over {_seeds(n)} ({COVERS})", direction=direction)


def _noncentrality(dof: int, crit: float, power: float) -> float:
    """Noncentrality nc with P(T > crit) = power for T ~ noncentral t(dof, nc)."""
    f = lambda nc: sps.nct.sf(crit, dof, nc) - power  # noqa: E731
    hi = crit + 10.0
    while f(hi) < 0:
        hi *= 2
    return float(optimize.brentq(f, 0.0, hi, xtol=1e-10))


def detectable_effect(sd: float, n_seeds: int, m_strengths: int = 1, power: float = 0.8, level: float = LEVEL) -> float:
    """Smallest true mean effect (units of sd) whose two-sided t-interval over n_seeds, Bonferroni-adjusted over
    m_strengths (level 1 - (1 - level) / m), excludes 0 on its side with probability `power`: exact via the
    noncentral t; the negligible band is ignored. inf for fewer than 2 seeds."""
    if n_seeds < MIN_SEEDS:
        return float("inf")
    crit = sps.t.ppf(1 - (1 - level) / m_strengths / 2, n_seeds - 1)
    return _noncentrality(n_seeds - 1, crit, power) * sd / np.sqrt(n_seeds)


def detectable_slope(sd: float, strengths, n_seeds: int, power: float = 0.8, level: float = LEVEL) -> float:
    """Smallest true slope over s (per unit s) whose OLS t-interval (design: every strength x n_seeds runs, sd of one
    run around the line) excludes 0 on its side with probability `power`. inf below 3 runs or 2 distinct strengths."""
    x = np.repeat(np.asarray(strengths, float), n_seeds)
    if len(x) < 3 or len(np.unique(x)) < 2:
        return float("inf")
    crit = sps.t.ppf(1 - (1 - level) / 2, len(x) - 2)
    return _noncentrality(len(x) - 2, crit, power) * sd / np.sqrt(((x - x.mean()) ** 2).sum())


def _asserts_effect(low, high, band):
    """Vectorised outcome(): True where the outcome is supported or contradicted (null 0)."""
    negligible = (low > -band) & (high < band)
    return ~negligible & ((low > 0) | (high < 0))


def simulate_null_sweeps(n_sweeps: int = 1000, strengths=(0.0, 0.25, 0.5, 1.0, 1.5), n_seeds: int = 3,
                         delta: float = 0.0, sd: float = 1.0, seed: int = 0) -> dict[str, float]:
    """False-positive rates of the rules under a true null, by Monte Carlo: values rng.normal(0, sd, (n_sweeps,
    len(strengths), n_seeds)) with rng = default_rng(seed). Returns fractions in [0, 1]: 'per_strength', an
    unadjusted 95% interval at one strength s > 0 is supported or contradicted (averaged over the strengths);
    'claim', the Bonferroni claim over s > 0 asserts an effect at some strength; 'trend', the OLS trend rule
    (band trend_delta(delta)) is supported or contradicted."""
    s = np.asarray(strengths, float)
    y = np.random.default_rng(seed).normal(0.0, sd, (n_sweeps, len(s), n_seeds))
    pos, n = y[:, s > 0, :], n_seeds
    m, se = pos.mean(-1), pos.std(-1, ddof=1) / np.sqrt(n)
    rates = {}
    for key, lvl in (("per_strength", LEVEL), ("claim", 1 - (1 - LEVEL) / pos.shape[1])):
        half = sps.t.ppf(0.5 + lvl / 2, n - 1) * se
        hit = _asserts_effect(m - half, m + half, delta)
        rates[key] = float(hit.mean() if key == "per_strength" else hit.any(axis=1).mean())
    x = np.repeat(s, n) - np.repeat(s, n).mean()
    flat = y.reshape(n_sweeps, -1)
    yc = flat - flat.mean(1, keepdims=True)
    slope = yc @ x / (x @ x)
    resid = yc - slope[:, None] * x
    half = sps.t.ppf(0.5 + LEVEL / 2, len(x) - 2) * np.sqrt((resid ** 2).sum(1) / (len(x) - 2) / (x @ x))
    rates["trend"] = float(_asserts_effect(slope - half, slope + half, trend_delta(delta)).mean())
    return rates
