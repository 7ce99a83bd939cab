"""Aggregation over seeds, confidence intervals, trend tests and the verdict rule v3 of CLAIMS.md.

Outcome of one interval [low, high] (a 95% Student-t interval over seeds) for a statistic predicted to lie on side
`direction` (+1 above, -1 below) of `null`, with smallest effect of interest `delta`, checked in this order:
  inconclusive  no interval (fewer than 2 seeds ran);
  negligible    the interval lies inside (null - delta, null + delta): too small to matter, whatever the sign;
  supported     the interval excludes the null on the predicted side;
  contradicted  the interval excludes the null on the other side (over strengths: only where Holm's step-down
                over the strengths keeps it, below);
  inconclusive  otherwise.
  not tested    the learned gate failed at that strength: the encoders did not learn (`learned_gate`), so
                nothing about their geometry is decided there.
A claim "for every s > 0" over m strengths is an intersection-union test: every strength is tested at the plain 95%
level (which keeps the family-wise error at 5% without adjustment); it is supported if every strength is,
negligible if every strength is. "Contradicted at some s" is a union claim: a strength's contradiction stands
only if its one-sided p-value survives Holm's step-down over the strengths (at 2.5%, the side of a 95% interval;
times the number of groups when the claim is read in several, e.g. objectives). Contradicted if any strength is,
inconclusive if all are, mixed otherwise; the text names the ranges of s where each outcome holds.
Trends (over s > 0 only, never through the s = 0 control): each seed's OLS slope over its strengths s > 0, and a
t-interval over the seeds' slopes (n_seeds - 1 degrees of freedom: runs of one seed share initial weights, batch
order and evaluation draws), negligible band delta / 1.5 per unit s. The step from the control to the weakest
s > 0 is its own row: the same-seed paired difference. The unit of replication is the training seed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize
from scipy import stats as sps

RULE_VERSION = "v3"
SUPPORTED, CONTRADICTED, NEGLIGIBLE = "supported", "contradicted", "negligible"
INCONCLUSIVE, MIXED = "inconclusive", "mixed"
NOT_TESTED = "not tested"
GATE_MIN_GAIN = 0.05  # the learned gate: the mean paired kNN gain over the untrained encoder must reach this
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
_ORDER = (CONTRADICTED, SUPPORTED, NEGLIGIBLE, INCONCLUSIVE, NOT_TESTED)   # order of the clauses of a verdict text


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


@dataclass(frozen=True)
class Gate:
    """The learned gate of rule v3: per strength, the paired kNN gain of h over each run's own untrained encoder
    (mean and t-interval over seeds, `learned_gate`). A strength passes when the interval excludes 0 and the mean
    reaches GATE_MIN_GAIN; a claim is decided only at strengths that pass. A strength absent from the table (no
    learning measured) does not pass."""

    table: pd.DataFrame  # strength, mean, low, high, n_seeds, passed

    def passed(self, strength: float) -> bool:
        row = self.table[np.isclose(self.table["strength"].to_numpy(float), float(strength))]
        return bool(len(row)) and bool(row["passed"].iloc[0])

    def gain_text(self, strength: float, digits: int = 3) -> str:
        """'gain 0.031 [0.010, 0.052]' at `strength` ('gain 0.031 (no interval: 1 seed)', 'no learning measured')."""
        row = self.table[np.isclose(self.table["strength"].to_numpy(float), float(strength))]
        if not len(row):
            return "no learning measured"
        r = row.iloc[0]
        if np.isnan(r["low"]):
            return f"gain {r['mean']:.{digits}f} (no interval: {_seeds(int(r['n_seeds']))})"
        return f"gain {r['mean']:.{digits}f} [{r['low']:.{digits}f}, {r['high']:.{digits}f}]"

    def reason(self, strengths) -> str:
        """Why the gate failed at `strengths`: 'the encoder did not learn: gain x [lo, hi]' (with 'at s' per
        strength when there are several)."""
        strengths = list(strengths)
        if len(strengths) == 1:
            return f"the encoder did not learn: {self.gain_text(strengths[0])}"
        return "the encoders did not learn: " + "; ".join(f"{self.gain_text(v)} at {v:g}" for v in strengths)

    def both(self, other: "Gate") -> "Gate":
        """The gate of a comparison of two architectures (C6): a strength passes where both pass; its row is the
        failing side's (the first's when both fail or both pass)."""
        a, b = self.table.set_index("strength"), other.table.set_index("strength")
        common = a.index.intersection(b.index)
        rows = [(b.loc[v] if a.loc[v, "passed"] and not b.loc[v, "passed"] else a.loc[v]).copy() for v in common]
        for row, v in zip(rows, common):
            row["passed"] = bool(a.loc[v, "passed"] and b.loc[v, "passed"])
        table = pd.DataFrame(rows, index=common).rename_axis("strength").reset_index() if rows else \
            self.table.iloc[:0]
        return Gate(table)


def learned_gate(df: pd.DataFrame, value: str = "gain") -> Gate:
    """The learned gate from per-run gains (columns strength, seed, `value`: e.g. `sweep.learning_table`'s
    paired kNN gain over the untrained encoder of the same seed): per strength the t-interval over seeds, passed
    where it excludes 0 and the mean is at least GATE_MIN_GAIN."""
    table = ci_table(df, value)
    table["passed"] = (table["low"] > 0) & (table["mean"] >= GATE_MIN_GAIN)
    return Gate(table)


def outcome(low: float, high: float, direction: int, delta: float, null: float = 0.0) -> str:
    """Outcome of one interval (module docstring): inconclusive if low or high is NaN, then negligible if
    null - delta < low and high < null + delta, then supported / contradicted if the interval excludes `null` on
    the predicted (direction +1: above, -1: below) / the other side, else inconclusive."""
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


def holm(p_values, alpha: float) -> np.ndarray:
    """Holm's step-down at family-wise level `alpha`: True where the hypothesis is rejected. NaN p-values are never
    rejected and do not count in the family."""
    p = np.asarray(p_values, float)
    out = np.zeros(len(p), bool)
    finite = np.flatnonzero(np.isfinite(p))
    m = len(finite)
    for rank, i in enumerate(finite[np.argsort(p[finite], kind="stable")]):
        if p[i] > alpha / (m - rank):
            break
        out[i] = True
    return out


def contradiction_p(values, direction: int, null: float = 0.0) -> float:
    """One-sided t-test p-value that the mean of `values` (over seeds) lies on the side of `null` opposite to
    `direction`; NaN below 2 finite values or with zero spread on the null."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if len(v) < MIN_SEEDS:
        return float("nan")
    se = v.std(ddof=1) / np.sqrt(len(v))
    if se == 0:
        return 0.0 if direction * (v.mean() - null) < 0 else 1.0
    t = (v.mean() - null) / se
    return float(sps.t.cdf(t, len(v) - 1) if direction > 0 else sps.t.sf(t, len(v) - 1))


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
                       adjust: bool = True, family: int = 1, gate: Gate | None = None) -> pd.DataFrame:
    """Columns strength, mean, low, high, n_seeds, level, p_contra, outcome, gate for each strength s > 0 of df
    (columns strength, seed, value): plain 95% intervals and outcomes; with `adjust`, a contradiction stands only
    where Holm's step-down over the m tested strengths keeps its one-sided p-value (p_contra) at
    (1 - LEVEL) / 2 / `family` (`family`: the number of groups, e.g. objectives, in which the same claim is read).
    With a `gate`, a strength where it fails reads NOT_TESTED (its interval is still shown) and leaves Holm's
    family; column gate holds the gain there."""
    pos = df[df["strength"] > 0]
    table = ci_table(pos, value)
    table["level"] = LEVEL
    tested = np.array([gate is None or gate.passed(v) for v in table["strength"]], bool)
    table["p_contra"] = [contradiction_p(g[value], direction, null) for _, g in pos.groupby("strength", sort=True)]
    p = table["p_contra"].where(tested)
    kept = holm(p, (1 - LEVEL) / 2 / family) if adjust else np.ones(len(table), bool)
    raw = [outcome(lo, hi, direction, delta, null) for lo, hi in zip(table["low"], table["high"])]
    table["outcome"] = [NOT_TESTED if not t else INCONCLUSIVE if o == CONTRADICTED and not k else o
                        for o, k, t in zip(raw, kept, tested)]
    table["gate"] = ["" if gate is None else gate.gain_text(v) for v in table["strength"]]
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
        """'0.056 [0.025, 0.088]', '0.056 (no CI: 1 seed)' without an interval, 'no estimate' without either."""
        if np.isnan(self.estimate):
            return "no estimate"
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
    """A claim's verdict from its parts' outcomes: supported if all are, contradicted if any is, negligible,
    inconclusive or not tested if all are, else mixed (supported where tested and not tested elsewhere is mixed:
    the claim is not supported at every s > 0)."""
    if outcomes and all(o == SUPPORTED for o in outcomes):
        return SUPPORTED
    if CONTRADICTED in outcomes:
        return CONTRADICTED
    for same in (NEGLIGIBLE, INCONCLUSIVE, NOT_TESTED):
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


def _ranges_text(strengths, outcomes, notes: dict[str, str] | None = None) -> str:
    """'supported for s >= 0.5; negligible at 0.25': consecutive strengths with one outcome grouped, one clause per
    outcome (contradicted, supported, negligible, inconclusive, not tested), a clause's groups joined by 'and';
    `notes` {outcome: text} adds ' (text)' to that outcome's clause."""
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
        if notes and o in notes:
            clauses[-1] += f" ({notes[o]})"
    return "; ".join(clauses)


def per_strength_claim(claim: str, statistic: str, df: pd.DataFrame, value: str, direction: int, delta: float,
                       null: float = 0.0, family: int = 1, gate: Gate | None = None) -> ClaimResult:
    """A claim 'for every s > 0' on df (columns strength, seed, value; s = 0 rows ignored): plain intervals and
    outcomes per strength, contradictions Holm-adjusted (per_strength_table); verdict supported if all are,
    contradicted if any is, negligible / inconclusive / not tested if all are, else mixed. The headline is the
    tested strength whose bound lies closest to the null on the predicted side (the weakest evidence). With a
    `gate` (`learned_gate`), strengths where the encoders did not learn read NOT_TESTED, with their gain."""
    table = per_strength_table(df, value, direction, delta, null, family=family, gate=gate)
    if len(table) == 0:
        return ClaimResult(claim, statistic, float("nan"), float("nan"), float("nan"), INCONCLUSIVE, 0, delta,
                           "inconclusive: no strength s > 0 ran", "no interval", table, direction)
    margin = (table["low"] - null) if direction > 0 else (null - table["high"])
    if margin.isna().all():
        margin = direction * (table["mean"] - null)
    if (table["outcome"] != NOT_TESTED).any():  # the headline is a tested strength
        margin = margin.where(table["outcome"] != NOT_TESTED)
        if margin.isna().all():
            margin = (direction * (table["mean"] - null)).where(table["outcome"] != NOT_TESTED)
    row = table.iloc[int(np.nanargmin(margin.to_numpy(float)))]
    lo_n, hi_n, m = int(table["n_seeds"].min()), int(table["n_seeds"].max()), len(table)
    covers = f"{_pct(LEVEL)} t-interval over {_seeds(lo_n, hi_n)} ({COVERS})"
    if m * family > 1:
        over = f"{m} strength{'s' if m > 1 else ''}" + (f" x {family} groups" if family > 1 else "")
        covers += (f"; every strength at the plain level (intersection-union), contradictions Holm-adjusted over "
                   f"{over}")
    outcomes = table["outcome"].tolist()
    untested = table.loc[table["outcome"] == NOT_TESTED, "strength"].tolist()
    notes = {NOT_TESTED: gate.reason(untested)} if untested else None
    return ClaimResult(claim, f"{statistic} (weakest s = {row['strength']:g})", float(row["mean"]), float(row["low"]),
                       float(row["high"]), combine_outcomes(outcomes), lo_n, delta,
                       _ranges_text(table["strength"], outcomes, notes), covers, table, direction)


def seed_slopes(df: pd.DataFrame, value: str) -> pd.Series:
    """Each seed's OLS slope of `value` over its strengths s > 0 (index: seed); seeds with fewer than 2 distinct
    strengths s > 0 are left out."""
    pos = df[df["strength"] > 0][["seed", "strength", value]].dropna()
    out = {k: ols_slope(g, value)[0] for k, g in pos.groupby("seed") if g["strength"].nunique() >= 2}
    return pd.Series(out, dtype=float)


def trend_claim(claim: str, statistic: str, df: pd.DataFrame, value: str, direction: int, delta: float, *,
                slope_delta: float | None = None, gate: Gate | None = None) -> ClaimResult:
    """A claim about the trend of `value` over s > 0 (df columns strength, seed, value; the s = 0 control is left
    out): each seed's OLS slope over its strengths s > 0 (`seed_slopes`), a t-interval over the seeds' slopes and
    outcome() with band slope_delta (default trend_delta(delta), per unit s); inconclusive with no interval below
    2 seeds. With a `gate`, the slope is fitted over the strengths where it passes only, and the trend is not
    tested when fewer than 2 of them pass."""
    band = trend_delta(delta) if slope_delta is None else slope_delta
    s = sorted(df.loc[(df["strength"] > 0) & df[value].notna(), "strength"].unique())
    failed = [v for v in s if gate is not None and not gate.passed(v)]
    if failed and len(s) - len(failed) < 2 <= len(s):
        return ClaimResult(claim, f"slope of {statistic} over s > 0", float("nan"), float("nan"), float("nan"),
                           NOT_TESTED, 0, band, f"not tested for the trend, which needs 2 strengths s > 0 where the "
                           f"encoders learned ({gate.reason(failed)})", "no interval", direction=direction)
    if failed:
        df, s = df[~df["strength"].isin(failed)], [v for v in s if v not in failed]
    if len(s) < 2:
        return ClaimResult(claim, f"slope of {statistic} over s > 0", float("nan"), float("nan"), float("nan"),
                           INCONCLUSIVE, 0, band, f"inconclusive for the trend, which needs at least 2 strengths "
                           f"s > 0; this sweep has {len(s)}", "no interval", direction=direction)
    slopes = seed_slopes(df, value)
    slope, lo, hi = mean_ci(slopes.to_numpy())
    verdict = outcome(lo, hi, direction, band)
    span = f" over {s[0]:g} <= s <= {s[-1]:g}" if len(s) > 1 else ""
    covers = (f"{_pct(LEVEL)} t-interval over {_seeds(len(slopes))}' OLS slopes over s > 0 ({len(s)} strengths; "
              f"{max(len(slopes) - 1, 0)} degrees of freedom; {COVERS})")
    left_out = f" (not tested at {', '.join(f'{v:g}' for v in failed)}: {gate.reason(failed)})" if failed else ""
    return ClaimResult(claim, f"slope of {statistic} over s > 0", slope, lo, hi, verdict, len(slopes), band,
                       f"{verdict} for the trend{span}{left_out}", covers, direction=direction)


def step_claim(claim: str, statistic: str, df: pd.DataFrame, value: str, direction: int, delta: float,
               gate: Gate | None = None) -> ClaimResult:
    """The step from the s = 0 control to the weakest s > 0, as its own row: each seed's value at the weakest
    s > 0 minus its value at s = 0 (same-seed pairs), a t-interval over seeds and outcome(); inconclusive
    without a control or below 2 paired seeds; not tested where a `gate` fails at that weakest s > 0."""
    pos = sorted(df.loc[df["strength"] > 0, "strength"].unique())
    if not pos or not (df["strength"] == 0).any():
        return ClaimResult(claim, f"step of {statistic} from s = 0", float("nan"), float("nan"), float("nan"),
                           INCONCLUSIVE, 0, delta, "inconclusive: no s = 0 control and s > 0 pair", "no interval",
                           direction=direction)
    if gate is not None and not gate.passed(pos[0]):
        return ClaimResult(claim, f"step of {statistic} from s = 0 to s = {pos[0]:g}", float("nan"), float("nan"),
                           float("nan"), NOT_TESTED, 0, delta, f"not tested for the step from s = 0 to {pos[0]:g} "
                           f"({gate.reason([pos[0]])})", "no interval", direction=direction)
    wide = df.pivot_table(index="seed", columns="strength", values=value).reindex(columns=[0.0, pos[0]])
    diff = (wide[pos[0]] - wide[0.0]).dropna()
    res = single_claim(claim, f"step of {statistic} from s = 0 to s = {pos[0]:g}", diff.to_numpy(), direction, delta)
    return ClaimResult(res.claim, res.statistic, res.estimate, res.low, res.high, res.verdict, res.n_seeds, delta,
                       f"{res.verdict} for the step from s = 0 to {pos[0]:g}",
                       res.covers.replace(f"over {_seeds(res.n_seeds)}", f"over {_seeds(res.n_seeds)}' same-seed "
                                                                          f"differences"), direction=direction)


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
    """Smallest true mean effect (units of sd), the same at each of m_strengths independent strengths, that the
    intersection-union rule finds at every strength at once (each plain two-sided t-interval over n_seeds excludes
    0 on its side) with probability `power`: per-strength power power ** (1 / m), exact via the noncentral t; the
    negligible band is ignored. inf for fewer than 2 seeds."""
    if n_seeds < MIN_SEEDS:
        return float("inf")
    crit = sps.t.ppf(1 - (1 - level) / 2, n_seeds - 1)
    return _noncentrality(n_seeds - 1, crit, power ** (1 / m_strengths)) * sd / np.sqrt(n_seeds)


def detectable_slope(sd: float, strengths, n_seeds: int, power: float = 0.8, level: float = LEVEL,
                     seed_slope_sd: float = 0.0) -> float:
    """Smallest true slope over s > 0 (per unit s) that the trend rule (each seed's OLS slope over the strengths
    s > 0, t-interval over seeds) finds with probability `power`, for run noise `sd` around each seed's line and
    a seed-to-seed slope sd `seed_slope_sd`. inf below 2 seeds or 2 strengths s > 0."""
    x = np.asarray([v for v in strengths if v > 0], float)
    if n_seeds < MIN_SEEDS or len(np.unique(x)) < 2:
        return float("inf")
    slope_sd = np.sqrt(sd ** 2 / ((x - x.mean()) ** 2).sum() + seed_slope_sd ** 2)
    crit = sps.t.ppf(1 - (1 - level) / 2, n_seeds - 1)
    return _noncentrality(n_seeds - 1, crit, power) * slope_sd / np.sqrt(n_seeds)


NULL_FAMILIES = ("independent", "seed-correlated", "step")


def simulate_sweeps(n_sweeps: int, strengths, n_seeds: int, family: str = "independent", sd: float = 1.0,
                    effect: float = 0.0, seed: int = 0) -> np.ndarray:
    """Values (n_sweeps, len(strengths), n_seeds) of a statistic under one of the NULL_FAMILIES, plus `effect` at
    every s > 0: "independent", rng.normal(0, sd) per run; "seed-correlated", a per-seed intercept (sd 1) and
    per-seed slope (sd 0.3 per unit s) shared by the seed's runs, plus run noise sd; "step", independent noise
    plus a step of 3 (in units of sd) at every s > 0, flat above 0 (a null for trends over s > 0 only)."""
    s = np.asarray(strengths, float)
    rng = np.random.default_rng(seed)
    y = rng.normal(0.0, sd, (n_sweeps, len(s), n_seeds))
    if family == "seed-correlated":
        y = y + rng.normal(0, 1.0, (n_sweeps, 1, n_seeds)) + rng.normal(0, 0.3, (n_sweeps, 1, n_seeds)) * s[:, None]
    elif family == "step":
        y = y + 3.0 * sd * (s > 0)[:, None]
    elif family != "independent":
        raise ValueError(f"unknown null family {family!r}; accepted: {', '.join(NULL_FAMILIES)}")
    return y + effect * (s > 0)[:, None]


def rule_rates(y: np.ndarray, strengths, delta: float = 0.0, direction: int = +1) -> dict[str, float]:
    """How often each rule asserts something on sweeps y (n_sweeps, strengths, seeds): 'per_strength', a plain 95%
    interval at one strength s > 0 excludes 0 (supported or contradicted; averaged over strengths); 'supported_all',
    the intersection-union rule finds every s > 0 supported; 'contradicted_any', some strength's contradiction
    survives Holm; 'claim', either of the last two; 'trend', the per-seed-slope trend rule over s > 0 is supported
    or contradicted (band trend_delta(delta)). Fractions in [0, 1]."""
    s = np.asarray(strengths, float)
    pos, n = y[:, s > 0, :], y.shape[2]
    m, se = pos.mean(-1), pos.std(-1, ddof=1) / np.sqrt(n)
    half = sps.t.ppf(0.5 + LEVEL / 2, n - 1) * se
    lo, hi = m - half, m + half
    effect = _asserts_effect(lo, hi, delta)
    supported = effect & ((lo > 0) if direction > 0 else (hi < 0))
    t = m / se
    p_contra = sps.t.cdf(t, n - 1) if direction > 0 else sps.t.sf(t, n - 1)
    kept = np.array([holm(p, (1 - LEVEL) / 2) for p in p_contra])
    contra = (kept & effect & ~supported).any(1)
    x = s[s > 0] - s[s > 0].mean()
    slopes = np.einsum("wsk,s->wk", pos - pos.mean(1, keepdims=True), x) / (x @ x)   # (sweeps, seeds)
    sm, ss = slopes.mean(1), slopes.std(1, ddof=1) / np.sqrt(n)
    th = sps.t.ppf(0.5 + LEVEL / 2, n - 1) * ss
    all_supported = supported.all(1)
    return {"per_strength": float(effect.mean()), "supported_all": float(all_supported.mean()),
            "contradicted_any": float(contra.mean()), "claim": float((all_supported | contra).mean()),
            "trend": float(_asserts_effect(sm - th, sm + th, trend_delta(delta)).mean())}


def _asserts_effect(low, high, band):
    """Vectorised outcome(): True where the outcome is supported or contradicted (null 0)."""
    negligible = (low > -band) & (high < band)
    return ~negligible & ((low > 0) | (high < 0))


def simulate_null_sweeps(n_sweeps: int = 1000, strengths=(0.0, 0.25, 0.5, 1.0), n_seeds: int = 4,
                         delta: float = 0.0, sd: float = 1.0, seed: int = 0,
                         family: str = "independent") -> dict[str, float]:
    """False-positive rates of the rules (`rule_rates`) on `n_sweeps` sweeps of the null `family`
    (`simulate_sweeps`). For "step" only 'trend' is a false positive (the step makes every s > 0 differ from 0)."""
    return rule_rates(simulate_sweeps(n_sweeps, strengths, n_seeds, family, sd, seed=seed), strengths, delta)


def least_favourable_iut_rate(n_sweeps: int = 1000, strengths=(0.0, 0.25, 0.5, 1.0), n_seeds: int = 4,
                              seed: int = 0) -> float:
    """The intersection-union rule's size: how often "supported for every s > 0" is read when one strength sits
    exactly at the null and every other has a large effect (10 sd), the configuration where its error is largest
    (about 2.5%, the one-sided level of a 95% interval)."""
    s = np.asarray(strengths, float)
    y = simulate_sweeps(n_sweeps, strengths, n_seeds, seed=seed)
    first = np.flatnonzero(s > 0)[0]
    y = y + 10.0 * ((s > 0) & (np.arange(len(s)) != first))[:, None]
    return rule_rates(y, strengths)["supported_all"]
