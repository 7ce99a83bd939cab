"""Each claim's verdicts (rule v3 of CLAIMS.md, in `stats`) and the one sentence that reads them for a person.

A `*_verdicts(df)` takes the tidy table of `measures` and returns {name: ClaimResult}; "primary" is the
claim's primary statistic, the others are secondary readings. `reading(result, subject)` builds the page's
sentence from a result; nothing here types a number or a verdict.
"""
from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd

from sslgeo_lib import measures, stats
from sslgeo_lib.measures import PROGRESS_STATISTICS, SHAPE_STATISTICS, erank_ratio, layer_difference, retention_scores
from sslgeo_lib.stats import DELTAS, ClaimResult, Gate, per_strength_claim, step_claim, trend_claim


def transfer_verdicts(df: pd.DataFrame, gate: Gate | None = None) -> dict[str, ClaimResult]:
    """C1 (rule v3): primary = the learned linear-probe gap, gap(h, z) - gap(h, z0) = acc(z0) - acc(z) > 0 at
    every s > 0 (z0 = g0(h), the run's projector at initialisation); trend: it grows with s; step: from the
    s = 0 control. The same three for kNN accuracy; the raw gaps acc(h) - acc(z) as secondary rows. `gate`: the
    learned gate (`stats.learned_gate`), applied to every row."""
    out = {}
    for probe, label in (("linear", "linear-probe"), ("knn", "kNN")):
        learned = layer_difference(df, probe, a="z0", b="z")
        raw = layer_difference(df, probe, a="h", b="z")
        key = "primary" if probe == "linear" else "knn"
        prefix = "" if key == "primary" else f"{key}_"
        what = f"learned {label} gap acc(z0) - acc(z)"
        out[key] = per_strength_claim("C1", what, learned, probe, +1, DELTAS["C1"], gate=gate)
        out[f"{prefix}trend"] = trend_claim("C1", what, learned, probe, +1, DELTAS["C1"], gate=gate)
        out[f"{prefix}step"] = step_claim("C1", what, learned, probe, +1, DELTAS["C1"], gate=gate)
        out[f"{prefix}raw"] = per_strength_claim("C1", f"{label} acc(h) - acc(z) (raw)", raw, probe, +1,
                                                 DELTAS["C1"], gate=gate)
    return out


def invariance_verdicts(df: pd.DataFrame, gate: Gate | None = None) -> dict[str, ClaimResult]:
    """C2 (rule v3): primary = the learned part, I(z) - I(z0) > 0 at every s > 0 with s_eval = s_train (z0 =
    g0(h)); the same at the fixed s_eval; its trend and step at the fixed s_eval (> 0: the trained projector's
    invariance grows with s); the raw I(z) - I(h) as secondary rows; and "the encoder stays put": the slope of
    I(h) at the fixed s_eval over s > 0, predicted negligible (the loss acts on z, so I(z) > I(h) is nearly
    built in; "rather than the encoder" is this row)."""
    learned = layer_difference(df, "invariance", keys=("eval",), a="z", b="z0")
    raw = layer_difference(df, "invariance", keys=("eval",))
    at_train, fixed = learned[learned["eval"] == "train"], learned[learned["eval"] == "fixed"]
    h_fixed = df[(df["eval"] == "fixed") & (df["layer"] == "h")]
    d = DELTAS["C2"]
    return {
        "primary": per_strength_claim("C2", "learned I(z) - I(z0), s_eval = s_train", at_train, "invariance", +1,
                                      d, gate=gate),
        "fixed": per_strength_claim("C2", "learned I(z) - I(z0), s_eval = 1", fixed, "invariance", +1, d, gate=gate),
        "trend": trend_claim("C2", "learned I(z) - I(z0) at s_eval = 1", fixed, "invariance", +1, d, gate=gate),
        "step": step_claim("C2", "learned I(z) - I(z0) at s_eval = 1", fixed, "invariance", +1, d, gate=gate),
        "raw": per_strength_claim("C2", "I(z) - I(h), s_eval = s_train (raw)", raw[raw["eval"] == "train"],
                                  "invariance", +1, d, gate=gate),
        "encoder_stays_put": stays_put(trend_claim("C2", "I(h) at s_eval = 1", h_fixed, "invariance", +1, d,
                                                   gate=gate), "the encoder stays put"),
    }


def stays_put(trend: ClaimResult, name: str) -> ClaimResult:
    """A trend predicted to be negligible, as a claim named `name`: supported where the slope's interval lies
    inside the negligible band, contradicted where it excludes 0 (either sign: the statistic moves with s),
    otherwise as the trend reads (inconclusive, not tested)."""
    verdict = {stats.NEGLIGIBLE: stats.SUPPORTED, stats.SUPPORTED: stats.CONTRADICTED}.get(trend.verdict, trend.verdict)
    text = trend.text.replace(f"{trend.verdict} for the trend", f"{verdict} ({trend.verdict} trend)", 1)
    return dataclasses.replace(trend, statistic=f"{name}: {trend.statistic} (predicted negligible)", verdict=verdict,
                               text=text)


def dimension_verdicts(df: pd.DataFrame, gate: Gate | None = None) -> dict[str, ClaimResult]:
    """C3 (rule v3): primary = the learned part, log(erank(z) / erank(z0)) < 0 at every s > 0 (z0 = g0(h)); its
    trend (falls with s) and step; secondary: the raw log(erank(z) / erank(h)), z against the top-m principal
    components of h (log(erank(z) / erank(h_top_m)): what a linear map to m dimensions keeps at best), and the log
    effective rank of the projector Jacobian falling with s."""
    wide = erank_ratio(df).assign(log_J=lambda w: np.log(w["J"]))
    d = DELTAS["C3"]
    what = "log(erank(z) / erank(z0))"
    return {
        "primary": per_strength_claim("C3", what, wide, "log_learned", -1, d, gate=gate),
        "trend": trend_claim("C3", what, wide, "log_learned", -1, d, slope_delta=DELTAS["C3_trend"], gate=gate),
        "step": step_claim("C3", what, wide, "log_learned", -1, d, gate=gate),
        "raw": per_strength_claim("C3", "log(erank(z) / erank(h)) (raw)", wide, "log_ratio", -1, d, gate=gate),
        "top_m": per_strength_claim("C3", "log(erank(z) / erank of h's top-m principal components)", wide,
                                    "log_vs_top_m", -1, d, gate=gate),
        "jacobian": trend_claim("C3", "log erank of the projector Jacobian", wide, "log_J", -1, d, gate=gate),
    }


def tangent_verdicts(df: pd.DataFrame, gate: Gate | None = None) -> dict[str, ClaimResult]:
    """C4 (v3): primary = the locality gap alpha(A_i, T_i) - alpha(A_i, T_j) > 0 at every s > 0 (d fixed, r the
    Jacobian's effective rank, j a random other anchor); the second foil, j the nearest other anchor of the same
    class ("the tangent plane at this point" rather than "this class's subspace"); the same with the local lPCA d,
    without the radial direction and at r = d, 2d (sensitivity). The mechanism's headline (key "rho"): log rho
    paired with the same seed's s = 0 control (estimator bias cancels: untrained networks read log rho < 0);
    beside it the unpaired log rho, its trend and step. Secondary (v1, with caveats on the page): alpha -
    alpha(global PCA), alpha - alpha(random), log rho against random directions and through z / ||z||."""
    df = df.assign(vs_global=df["alpha"] - df["alpha_global"], vs_random=df["alpha"] - df["alpha_random"],
                   log_rho_data=np.log(df["rho_data"]), log_rho_random=np.log(df["rho_random"]),
                   log_rho_normalized=np.log(df["rho_normalized"]))
    part = {(d, r): df[(df["d_mode"] == d) & (df["r_mode"] == r)]
            for d in ("fixed", "local") for r in ("erank", "d", "2d")}
    main, loc = DELTAS["C4_locality"], DELTAS["C4_rho"]
    gap = "locality gap alpha(A_i, T_i) - alpha(A_i, T_j)"
    base = part["fixed", "erank"]

    def row(statistic, frame, value, direction, delta):
        return per_strength_claim("C4", statistic, frame, value, direction, delta, gate=gate)

    return {
        "primary": row(f"{gap}, d fixed", base, "locality_gap", +1, main),
        "same_class": row(f"{gap}, j the nearest anchor of the same class", base, "locality_gap_same_class", +1,
                          main),
        "local_d": row(f"{gap}, d local", part["local", "erank"], "locality_gap", +1, main),
        "no_radial": row(f"{gap}, radial direction removed", base, "locality_gap_no_radial", +1, main),
        "r_d": row(f"{gap}, r = d", part["fixed", "d"], "locality_gap", +1, main),
        "r_2d": row(f"{gap}, r = 2d", part["fixed", "2d"], "locality_gap", +1, main),
        "rho": row("log rho minus its s = 0 value (same seed)", paired_to_control(base, "log_rho_data"),
                   "log_rho_data", -1, loc),
        "rho_raw": row("log rho (augmentation vs data directions, unpaired)", base, "log_rho_data", -1, loc),
        "rho_trend": trend_claim("C4", "log rho (augmentation vs data directions)", base, "log_rho_data", -1, loc,
                                 gate=gate),
        "rho_step": step_claim("C4", "log rho (augmentation vs data directions)", base, "log_rho_data", -1, loc,
                               gate=gate),
        "vs_global": row("alpha(local) - alpha(global PCA) (v1)", base, "vs_global", +1, main),
        "vs_random": row("alpha(local) - alpha(random) (v1)", base, "vs_random", +1, main),
        "rho_random": row("log rho against random directions (v1)", base, "log_rho_random", -1, loc),
        "rho_normalized": row("log rho through z / ||z|| (v1)", base, "log_rho_normalized", -1, loc),
    }


def paired_to_control(df: pd.DataFrame, value: str) -> pd.DataFrame:
    """`value` minus the same seed's value at s = 0 (the no-augmentation control run, trained and measured by
    the same pipeline): what remains is the effect of augmentation, free of any bias of the estimator. Rows of
    seeds without a control are dropped; the s = 0 rows become 0."""
    control = df[df["strength"] == 0].set_index("seed")[value]
    out = df[df["seed"].isin(control.index)].copy()
    out[value] = out[value] - out["seed"].map(control)
    return out


def retention_verdicts(df: pd.DataFrame, gate: Gate | None = None) -> dict[str, ClaimResult]:
    """C5 (rule v3): primary = the learned part, retention(z0) - retention(z) > 0 at every s > 0 (z0 = g0(h)): the
    trained projector discards more augmentation information than its initialisation does; trend: retention(z)
    - retention(z0) falls with s; step; secondary: the raw retention(h) - retention(z), and the same through
    z / ||z|| (what NT-Xent sees: information carried by ||z|| costs the loss nothing)."""
    scores = retention_scores(df)
    learned = layer_difference(scores, "retention", a="z0", b="z")
    kept = layer_difference(scores, "retention", a="z", b="z0")
    d = DELTAS["C5"]
    return {
        "primary": per_strength_claim("C5", "learned retention(z0) - retention(z)", learned, "retention", +1, d,
                                      gate=gate),
        "trend": trend_claim("C5", "retention(z) - retention(z0)", kept, "retention", -1, d, gate=gate),
        "step": step_claim("C5", "retention(z) - retention(z0)", kept, "retention", -1, d, gate=gate),
        "raw": per_strength_claim("C5", "retention(h) - retention(z) (raw)",
                                  layer_difference(scores, "retention", a="h", b="z"), "retention", +1, d, gate=gate),
        "unit": per_strength_claim("C5", "retention(h) - retention(z / ||z||)",
                                   layer_difference(scores, "retention", a="h", b="z_unit"), "retention", +1, d,
                                   gate=gate),
    }


def verdict_table(verdicts: dict[str, ClaimResult]) -> pd.DataFrame:
    """The per-strength rows of every per-strength result (statistic, strength, mean, interval, outcome)."""
    parts = {v.statistic.split(" (weakest")[0]: v.table for v in verdicts.values() if v.table is not None}
    return pd.concat(parts, names=["statistic"]).reset_index(level=0).reset_index(drop=True)


def reading(result: ClaimResult, subject: str, digits: int = 3) -> str:
    """One sentence for a person: `subject` (what the statistic says, in words) and the computed verdict, with
    the estimate at the weakest evidence (the headline), at every strength whose outcome contradicts the
    prediction, and at the largest effect, read against the smallest effect of interest."""
    f = f"{{:.{digits}f}}"
    head = f"{subject[0].upper()}{subject[1:]}: {result.verdict_text()}"
    if result.table is None or result.table.empty:
        return f"{head} (estimate {result.ci_text(digits)}; smallest effect of interest ±{f.format(result.delta)})."
    t = result.table
    weakest = float(result.statistic.rsplit("weakest s = ", 1)[-1].rstrip(")")) if "weakest s = " in result.statistic \
        else float(t["strength"].min())
    largest = float(t.iloc[int(np.argmax(np.abs(t["mean"].to_numpy(float))))]["strength"])
    shown = {weakest, largest} | set(t.loc[t["outcome"] == stats.CONTRADICTED, "strength"].astype(float))
    def interval(r):
        return "(no interval)" if np.isnan(r["low"]) else f"[{f.format(r['low'])}, {f.format(r['high'])}]"

    parts = [f"{f.format(r['mean'])} {interval(r)} at s = {r['strength']:g}"
             for _, r in t.iterrows() if float(r["strength"]) in shown]
    return (f"{head}; the estimate is {', '.join(parts)} (smallest effect of interest ±{f.format(result.delta)}; "
            f"{result.covers}).")


def primary_values(runs, ev) -> dict[str, pd.DataFrame]:
    """Each claim's primary statistic (rule v3: the learned parts of C1, C2, C3 and C5; C4's log rho paired with
    the s = 0 control) per run, {"C1": df with columns strength, seed, value}: what the methods page measures the
    seed-to-seed noise of."""

    tang = measures.tangent_table(runs, ev)
    main = tang[(tang["d_mode"] == "fixed") & (tang["r_mode"] == "erank")]
    inv = measures.layer_difference(measures.invariance_table(runs, ev), "invariance", keys=("eval",), a="z", b="z0")
    frames = {
        "C1": (layer_difference(measures.transfer_table(runs, ev), "linear", a="z0", b="z"), "linear"),
        "C2": (inv[inv["eval"] == "train"], "invariance"),
        "C3": (erank_ratio(measures.dimension_table(runs, ev)), "log_learned"),
        "C4_locality": (main, "locality_gap"),
        "C4_rho": (paired_to_control(main.assign(log_rho=np.log(main["rho_data"])), "log_rho"), "log_rho"),
        "C5": (layer_difference(retention_scores(measures.retention_table(runs, ev)), "retention", a="z0", b="z"),
               "retention"),
    }
    return {k: df[["strength", "seed"]].assign(value=df[col].to_numpy()) for k, (df, col) in frames.items()}


def power_table(values: dict[str, pd.DataFrame], shapes: dict[str, tuple[int, int]],
                power: float = 0.8) -> pd.DataFrame:
    """Smallest effect each primary statistic detects with `power` at every strength s > 0 at once (the
    intersection-union rule, `stats.detectable_effect`), at the seed-to-seed SD measured in this build (pooled
    over strengths s > 0), for each sweep shape {name: (n_seeds, m_strengths)}; beside each, the statistic's delta."""
    rows = []
    for key, df in values.items():
        sd = float(np.sqrt(df[df["strength"] > 0].groupby("strength")["value"].var(ddof=1).mean()))
        row = {"statistic": key, "delta": DELTAS[key], "seed-to-seed sd": sd}
        for name, (n, m) in shapes.items():
            row[f"detectable, {name}"] = stats.detectable_effect(sd, n, m, power)
        rows.append(row)
    return pd.DataFrame(rows)


def shape_verdicts(df: pd.DataFrame, reference_depth: int = 2, gate: Gate | None = None) -> dict[str, ClaimResult]:
    """C6, depth 0 (no projector) against depth `reference_depth` (the default shape) at the same s and seed
    (df: measures.shape_table; the reference is the run at the base width, the smallest width of that depth
    present being used if several): primary = I(h) rises (the encoder itself becomes invariant); rank = log
    erank(h) falls (it collapses); transfer = linear-probe acc(h) falls. Deltas are those of C2, C3 and C1.
    `gate`: the learned gate of both architectures (`stats.Gate.both`)."""
    zero = df[df["depth"] == 0].set_index(["strength", "seed"])
    ref = df[df["depth"] == reference_depth]
    ref = ref[ref["width"] == ref["width"].min()].set_index(["strength", "seed"])
    both = zero.index.intersection(ref.index)
    columns = ["I_h", "log_erank_h", "acc_h"]
    diff = (zero.loc[both, columns] - ref.loc[both, columns]).reset_index()
    vs = f"depth 0 minus depth {reference_depth}"
    return {
        "primary": per_strength_claim("C6", f"I(h), {vs}", diff, "I_h", +1, DELTAS["C2"], gate=gate),
        "rank": per_strength_claim("C6", f"log erank(h), {vs}", diff, "log_erank_h", -1, DELTAS["C3"], gate=gate),
        "transfer": per_strength_claim("C6", f"linear-probe acc(h), {vs}", diff, "acc_h", -1, DELTAS["C1"],
                                       gate=gate),
    }


def shape_summary(df: pd.DataFrame) -> pd.DataFrame:
    """C6's exploratory table: for every shape and strength, each SHAPE_STATISTICS column's mean and 95%
    t-interval over seeds (no verdict: beyond depth 0 the claim states no direction). Columns: depth, width,
    strength, statistic, mean, low, high, n_seeds."""

    parts = []
    for column in SHAPE_STATISTICS:
        t = stats.ci_table(df, column, by=("depth", "width", "strength"))
        parts.append(t.assign(statistic=column))
    return pd.concat(parts, ignore_index=True)


def progress_verdicts(df: pd.DataFrame, gate: Gate | None = None) -> dict[str, ClaimResult]:
    """B4: each PROGRESS_STATISTICS column at each kept point of training (25%, 50%, 100%), read with its claim's
    rule (direction and delta of C1, C2, C3) over the strengths s > 0: does each effect hold early, and does it
    grow or fade? Keys: "<statistic>_<percent>" (e.g. "C2_50"); "primary" is C2 at the end of training. `gate`: the
    learned gate of the finished runs (an encoder that did not learn by the end did not learn earlier either)."""
    spec = {"C1_knn": (+1, DELTAS["C1"], "C1"), "C2": (+1, DELTAS["C2"], "C2"), "C3": (-1, DELTAS["C3"], "C3")}

    out = {}
    for progress, part in df.groupby("progress"):
        pct = int(round(100 * progress))
        for column, (direction, delta, claim) in spec.items():
            out[f"{column}_{pct}"] = per_strength_claim(
                "B4", f"{PROGRESS_STATISTICS[column]} at {pct}% of training", part, column, direction, delta, gate=gate)
    out["primary"] = out[f"C2_{max(int(round(100 * p)) for p in df['progress'])}"]
    return out


# C1-C5's primary statistics (measures.SHAPE_STATISTICS columns): predicted direction and delta, as on the claim pages
PRIMARY = {"C1": (+1, DELTAS["C1"]), "C2": (+1, DELTAS["C2"]), "C3": (-1, DELTAS["C3"]),
           "C4": (+1, DELTAS["C4_locality"]), "C5": (+1, DELTAS["C5"])}


def group_verdicts(df: pd.DataFrame, by: str, gates: dict | None = None) -> dict[str, dict[str, ClaimResult]]:
    """B1 / B2: C1-C5's primary statistics read with rule v3 in each group of column `by` (an objective, an
    augmentation family) over its strengths s > 0, contradictions Holm-adjusted over strengths x groups (the same
    claim read in every group, the reference group included: a contradiction of the reference needs more evidence
    here than on its claim page; its intervals are the same). df: measures.group_table. `gates` {group: Gate}: each
    group's learned gate (`group_gates`). Returns {group: {"C1": ..., ..., "C5": ...}}."""

    groups = sorted(df[by].unique(), key=str)
    gates = gates or {}
    return {g: {claim: per_strength_claim(claim, f"{SHAPE_STATISTICS[claim]} ({g})", df[df[by] == g], claim,
                                          direction, delta, family=len(groups), gate=gates.get(g))
                for claim, (direction, delta) in PRIMARY.items()}
            for g in groups}


def group_gates(learning: pd.DataFrame, by: str) -> dict:
    """{group: its learned gate} from `sweep.learning_table` rows (one per run, with column `by`)."""
    return {g: stats.learned_gate(part) for g, part in learning.groupby(by)}


def across_groups(results: dict[str, ClaimResult], claim: str, what: str) -> ClaimResult:
    """One claim read in every group (results: group -> its ClaimResult, from `group_verdicts`) as one line:
    verdict supported if every group's is, contradicted if any is, negligible / inconclusive if all are, else
    mixed; the text names the groups of each outcome ("supported for vicreg, byol; negligible for barlow_twins");
    the headline is the group whose interval lies closest to 0 on the predicted side (the weakest evidence)."""
    direction = PRIMARY[claim][0]
    groups = list(results)
    margins = [(results[g].low if direction > 0 else -results[g].high) for g in groups]
    margins = np.array([m if np.isfinite(m) else direction * results[g].estimate for m, g in zip(margins, groups)])
    name = groups[int(np.nanargmin(margins))] if np.isfinite(margins).any() else groups[0]
    weakest = results[name]
    at = ""
    if weakest.table is not None and len(weakest.table):
        row = weakest.table.iloc[int(np.argmin(np.abs(weakest.table["mean"].to_numpy(float) - weakest.estimate)))]
        at = f" at s = {row['strength']:g}"
    by_outcome: dict[str, list[str]] = {}
    for g in groups:
        by_outcome.setdefault(results[g].verdict, []).append(str(g))
    order = [stats.CONTRADICTED, stats.SUPPORTED, stats.MIXED, stats.NEGLIGIBLE, stats.INCONCLUSIVE, stats.NOT_TESTED]
    text = "; ".join(f"{o} for {', '.join(by_outcome[o])}" for o in order if o in by_outcome)
    verdict = stats.combine_outcomes([results[g].verdict for g in groups])
    return ClaimResult(claim, f"{what} (weakest: {name}{at})", weakest.estimate, weakest.low, weakest.high,
                       verdict, min(r.n_seeds for r in results.values()), weakest.delta, text, weakest.covers,
                       direction=direction)


def forest_rows(results) -> pd.DataFrame:
    """The rows of plots.forest_plot from ClaimResults (each claim's primary): one per claim, its statistic, headline
    interval, verdict, delta, predicted direction and (for claims over s) each strength's interval."""
    return pd.DataFrame([{"claim": r.claim, "label": re.sub(r" \(weakest [^)]*\)$", "", r.statistic),
                          "verdict": r.verdict, "delta": r.delta, "direction": r.direction, "estimate": r.estimate,
                          "low": r.low, "high": r.high,
                          "per_strength": r.table if r.table is not None and len(r.table) else None}
                         for r in results])
