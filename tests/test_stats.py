import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from sslgeo_lib import stats
from sslgeo_lib.stats import (CONTRADICTED, INCONCLUSIVE, MIXED, NEGLIGIBLE, SUPPORTED, ci_table, delta_table,
                              detectable_effect, detectable_slope, mean_ci, ols_slope, outcome, per_strength_claim,
                              per_strength_table, simulate_null_sweeps, single_claim, trend_claim)

T975_2 = 4.302653          # t_{0.975, 2}
STRENGTHS = (0.0, 0.25, 0.5, 1.0, 1.5)


def _sweep(values_by_strength):
    return pd.DataFrame([{"strength": s, "seed": k, "v": v} for s, vs in values_by_strength.items()
                         for k, v in enumerate(vs)])


def _around(means, spread=(-0.01, 0.0, 0.01)):
    """Three seeds per strength: mean +- spread (sd 0.01)."""
    return _sweep({s: [mu + e for e in spread] for s, mu in means.items()})


# ---------------------------------------------------------------- constants and deltas

def test_constants_and_delta_table():
    assert stats.RULE_VERSION == "v2" and stats.MIN_SEEDS == 2 and stats.LEVEL == 0.95
    assert (SUPPORTED, CONTRADICTED, NEGLIGIBLE, INCONCLUSIVE, MIXED) == (
        "supported", "contradicted", "negligible", "inconclusive", "mixed")
    d = stats.DELTAS
    assert d["C1"] == 0.01 and d["C2"] == 0.02 and d["C3"] == pytest.approx(np.log(1.1))
    assert d["C3_trend"] == 0.05 and d["C4_locality"] == 0.02 and d["C4_rho"] == pytest.approx(np.log(1.25))
    assert d["C5"] == 0.02 and d["C7"] == 0.05
    assert stats.trend_delta(0.03) == pytest.approx(0.02)
    table = delta_table().set_index("key")
    assert list(table.index) == list(d) and {"description", "delta", "trend_delta"} <= set(table.columns)
    assert table.loc["C1", "trend_delta"] == pytest.approx(0.01 / 1.5)
    assert table.loc["C3", "trend_delta"] == 0.05          # CLAIMS fixes C3's trend band itself


def test_old_bootstrap_is_gone():
    assert not hasattr(stats, "bootstrap_slope") and not hasattr(stats, "verdict_from_cis")


# ---------------------------------------------------------------- intervals

def test_mean_ci_is_the_t_interval():
    m, lo, hi = mean_ci([1.0, 2.0, 3.0])
    # mean 2, sd 1, n 3: half width t_{0.975, 2} / sqrt(3)
    assert m == 2.0 and hi - m == pytest.approx(T975_2 / np.sqrt(3), rel=1e-6) and m - lo == pytest.approx(hi - m)
    assert np.isnan(mean_ci([5.0])[1]) and mean_ci([5.0])[0] == 5.0
    assert mean_ci([1.0, np.nan, 3.0])[0] == 2.0 and np.isnan(mean_ci([])[0])
    _, lo90, hi90 = mean_ci([1.0, 2.0, 3.0], level=0.90)
    assert hi90 - 2.0 == pytest.approx(2.919986 / np.sqrt(3), rel=1e-6)   # t_{0.95, 2}


def test_ci_table_groups():
    table = ci_table(_sweep({0.0: [1.0, 3.0], 1.0: [2.0, 2.0]}), "v")
    assert list(table.columns) == ["strength", "mean", "low", "high", "n_seeds"]
    assert table["mean"].tolist() == [2.0, 2.0] and table["n_seeds"].tolist() == [2, 2]
    assert table["low"].iloc[1] == table["high"].iloc[1] == 2.0


@pytest.mark.parametrize("low,high,direction,delta,null,expected", [
    (0.1, 0.3, +1, 0.02, 0.0, SUPPORTED),
    (-0.3, -0.1, -1, 0.02, 0.0, SUPPORTED),
    (-0.3, -0.1, +1, 0.02, 0.0, CONTRADICTED),
    (0.1, 0.3, -1, 0.02, 0.0, CONTRADICTED),
    (-0.1, 0.3, +1, 0.02, 0.0, INCONCLUSIVE),
    (-0.01, 0.015, +1, 0.02, 0.0, NEGLIGIBLE),     # inside (-delta, delta), straddling 0
    (0.005, 0.015, +1, 0.02, 0.0, NEGLIGIBLE),     # excludes 0 but lies inside the band: negligible comes first
    (-0.015, -0.005, +1, 0.02, 0.0, NEGLIGIBLE),   # ... whatever the sign
    (0.005, 0.02, +1, 0.02, 0.0, SUPPORTED),       # the band is open: touching delta is not inside
    (0.9, 0.95, -1, 0.02, 1.0, SUPPORTED),         # null 1, predicted below
    (0.99, 0.995, -1, 0.02, 1.0, NEGLIGIBLE),
    (np.nan, np.nan, +1, 0.02, 0.0, INCONCLUSIVE),  # fewer than 2 seeds
    (0.005, 0.015, +1, 0.0, 0.0, SUPPORTED),       # delta 0: nothing is negligible
])
def test_outcome(low, high, direction, delta, null, expected):
    assert outcome(low, high, direction, delta, null) == expected


# ---------------------------------------------------------------- OLS trend

def test_ols_slope_of_exact_linear_data():
    df = _sweep({s: [2 * s + 1] * 3 for s in STRENGTHS})
    slope, lo, hi = ols_slope(df, "v")
    assert slope == pytest.approx(2.0) and hi - lo == pytest.approx(0.0, abs=1e-12)


def test_ols_slope_interval_is_linregress_stderr_times_t():
    r = np.random.default_rng(1)
    df = _sweep({s: list(0.3 * s + r.standard_normal(3)) for s in STRENGTHS})
    slope, lo, hi = ols_slope(df, "v")
    ref = sps.linregress(df["strength"], df["v"])
    half = sps.t.ppf(0.975, len(df) - 2) * ref.stderr
    assert slope == pytest.approx(ref.slope) and lo == pytest.approx(ref.slope - half)
    assert hi == pytest.approx(ref.slope + half)


def test_ols_slope_degenerate_designs():
    assert all(np.isnan(ols_slope(_sweep({0.5: [1.0, 2.0, 3.0]}), "v")))         # one distinct x
    slope, lo, hi = ols_slope(_sweep({0.0: [1.0], 1.0: [3.0]}), "v")            # two rows
    assert slope == 2.0 and np.isnan(lo) and np.isnan(hi)
    nan_row = _sweep({0.0: [1.0, np.nan], 1.0: [3.0, 3.0], 2.0: [5.0]})
    assert ols_slope(nan_row, "v")[0] == pytest.approx(2.0)


# ---------------------------------------------------------------- per-strength rule

def test_bonferroni_level_and_half_width():
    r = np.random.default_rng(2)
    df = _sweep({s: list(r.standard_normal(3)) for s in STRENGTHS})
    table = per_strength_table(df, "v", +1, 0.02)
    assert table["strength"].tolist() == [0.25, 0.5, 1.0, 1.5]                   # s = 0 dropped, m = 4
    assert table["level"].tolist() == pytest.approx([0.9875] * 4)
    for s, row in table.set_index("strength").iterrows():
        v = df.loc[df.strength == s, "v"]
        half = sps.t.ppf(1 - 0.0125 / 2, 2) * v.std(ddof=1) / np.sqrt(3)
        assert row["high"] - row["mean"] == pytest.approx(half) and row["mean"] - row["low"] == pytest.approx(half)
    plain = per_strength_table(df, "v", +1, 0.02, adjust=False)
    assert (plain["level"] == 0.95).all() and (plain["high"] - plain["low"] < table["high"] - table["low"]).all()
    assert list(table.columns) == ["strength", "mean", "low", "high", "n_seeds", "level", "outcome"]


def test_per_strength_claim_all_supported():
    df = _around({0.0: 0.0, 0.25: 0.2, 0.5: 0.5, 1.0: 0.3, 1.5: 0.4})
    res = per_strength_claim("C1", "gap", df, "v", +1, 0.01)
    assert res.verdict == SUPPORTED and res.text == "supported for every s > 0" and res.n_seeds == 3
    assert res.statistic == "gap (weakest s = 0.25)" and res.estimate == pytest.approx(0.2)
    assert res.delta == 0.01 and len(res.table) == 4
    assert res.covers == ("95% t-interval over 3 seeds (training and evaluation randomness), "
                          "Bonferroni-adjusted over 4 strengths (level 98.75%)")
    half = sps.t.ppf(1 - 0.0125 / 2, 2) * 0.01 / np.sqrt(3)
    assert res.low == pytest.approx(0.2 - half) and res.high == pytest.approx(0.2 + half)
    assert res.ci_text() == f"0.200 [{0.2 - half:.3f}, {0.2 + half:.3f}]" and res.verdict_text() == res.text


def test_per_strength_claim_one_contradicted():
    df = _around({0.0: 0.0, 0.25: -0.3, 0.5: 0.5, 1.0: 0.3, 1.5: 0.4})
    res = per_strength_claim("C1", "gap", df, "v", +1, 0.01)
    assert res.verdict == CONTRADICTED and res.text == "contradicted at 0.25; supported for s >= 0.5"
    assert "weakest s = 0.25" in res.statistic and res.estimate == pytest.approx(-0.3)


def test_per_strength_claim_predicted_below_null_one():
    df = _around({0.25: 0.8, 0.5: 0.6, 1.0: 0.5, 1.5: 0.4})
    res = per_strength_claim("C4", "rho", df, "v", -1, 0.02, null=1.0)
    assert res.verdict == SUPPORTED and "weakest s = 0.25" in res.statistic


def test_per_strength_claim_all_negligible():
    df = _around({0.25: 0.002, 0.5: -0.003, 1.0: 0.004, 1.5: 0.0}, spread=(-0.001, 0.0, 0.001))
    res = per_strength_claim("C2", "I(z) - I(h)", df, "v", +1, 0.02)
    assert res.verdict == NEGLIGIBLE and res.text == "negligible for every s > 0"


def test_per_strength_claim_mixed_texts():
    df = _around({0.0: 0.0, 0.25: 0.001, 0.5: 0.2, 1.0: 0.3, 1.5: 0.4}, spread=(-0.001, 0.0, 0.001))
    res = per_strength_claim("C5", "retention gap", df, "v", +1, 0.02)
    assert res.verdict == MIXED and res.text == "supported for s >= 0.5; negligible at 0.25"
    assert "weakest s = 0.25" in res.statistic
    wide = {0.25: [-1.0, 0.0, 1.0], 1.5: [-1.0, 0.0, 1.0]}
    df = _sweep({0.25: [-1.0, 0.0, 1.0], 0.5: [0.5, 0.51, 0.52], 1.0: [0.5, 0.51, 0.52], 1.5: wide[1.5]})
    res = per_strength_claim("C5", "retention gap", df, "v", +1, 0.02)
    assert res.verdict == MIXED and res.text == "supported for 0.5 <= s <= 1; inconclusive at 0.25 and 1.5"
    df = _sweep({0.25: [0.5, 0.51, 0.52], 0.5: [0.5, 0.51, 0.52], 1.0: wide[1.5], 1.5: [0.01, 0.011, 0.012]})
    res = per_strength_claim("C5", "retention gap", df, "v", +1, 0.02)
    assert res.text == "supported for 0 < s <= 0.5; negligible at 1.5; inconclusive at 1"


def test_per_strength_claim_all_inconclusive():
    df = _sweep({s: [-1.0, 0.0, 1.0] for s in (0.25, 0.5)})
    res = per_strength_claim("C1", "gap", df, "v", +1, 0.01)
    assert res.verdict == INCONCLUSIVE and res.text == "inconclusive for every s > 0"
    assert "Bonferroni-adjusted over 2 strengths (level 97.5%)" in res.covers


def test_per_strength_claim_fewer_than_two_seeds():
    df = _around({0.0: 0.0, 0.25: 0.2, 0.5: 0.5})
    one = per_strength_claim("C1", "gap", df[df.seed == 0], "v", +1, 0.01)
    assert one.verdict == INCONCLUSIVE and one.n_seeds == 1
    assert one.verdict_text() == "inconclusive for every s > 0 (fewer than 2 seeds ran)"
    assert one.ci_text() == "0.190 (no CI: 1 seed)" and "over 1 seed " in one.covers
    empty = per_strength_claim("C1", "gap", df[df.strength == 0], "v", +1, 0.01)
    assert empty.verdict == INCONCLUSIVE and "fewer than 2 seeds" in empty.verdict_text()


# ---------------------------------------------------------------- trend and single claims

def test_trend_claim_outcomes():
    down = _sweep({s: [1 - 0.5 * s + 0.01 * k for k in range(3)] for s in STRENGTHS})
    res = trend_claim("C3", "log erank ratio", down, "v", -1, 0.1)
    assert res.verdict == SUPPORTED and res.estimate == pytest.approx(-0.5)
    assert res.statistic == "slope of log erank ratio over s" and res.delta == pytest.approx(0.1 / 1.5)
    assert res.text == "supported for the trend over 0 <= s <= 1.5" and res.n_seeds == 3
    assert "15 runs (5 strengths x 3 seeds, 13 degrees of freedom" in res.covers
    assert trend_claim("C3", "x", down, "v", +1, 0.1).verdict == CONTRADICTED
    flat = _sweep({s: [0.01 * s + 0.001 * k for k in range(3)] for s in STRENGTHS})
    assert trend_claim("C2", "x", flat, "v", +1, 0.02).verdict == NEGLIGIBLE      # 0.01 < 0.02 / 1.5 per unit s
    assert trend_claim("C2", "x", flat, "v", +1, 0.02, slope_delta=0.0).verdict == SUPPORTED
    one = trend_claim("C3", "x", down[down.seed == 0], "v", -1, 0.1)
    assert one.verdict == INCONCLUSIVE and "fewer than 2 seeds" in one.verdict_text() and "no CI" in one.ci_text()


def test_single_claim():
    res = single_claim("C7", "fit gain (dex)", [0.2, 0.3, 0.4], +1, 0.05)
    assert res.verdict == SUPPORTED and res.estimate == pytest.approx(0.3) and res.n_seeds == 3
    assert res.high - 0.3 == pytest.approx(T975_2 * 0.1 / np.sqrt(3))
    assert res.covers == "95% t-interval over 3 seeds (training and evaluation randomness)"
    assert single_claim("C7", "x", [0.01, 0.011, 0.012], +1, 0.05).verdict == NEGLIGIBLE
    assert single_claim("C7", "x", [0.3, np.nan], +1, 0.05).verdict == INCONCLUSIVE


# ---------------------------------------------------------------- power

def test_detectable_effect_large_n_is_the_normal_formula():
    for m in (1, 4):
        z = sps.norm.ppf(1 - 0.05 / m / 2) + sps.norm.ppf(0.8)
        assert detectable_effect(2.0, 100_000, m) == pytest.approx(z * 2.0 / np.sqrt(100_000), rel=1e-3)
    assert detectable_effect(1.0, 3, 4) > detectable_effect(1.0, 3, 1) > detectable_effect(1.0, 10, 1)
    assert detectable_effect(1.0, 1) == np.inf


def test_detectable_effect_has_the_stated_power_by_monte_carlo():
    n, m, sd = 3, 4, 0.5
    effect = detectable_effect(sd, n, m)
    y = np.random.default_rng(3).normal(effect, sd, (40_000, n))
    low = y.mean(1) - sps.t.ppf(1 - 0.05 / m / 2, n - 1) * y.std(1, ddof=1) / np.sqrt(n)
    assert (low > 0).mean() == pytest.approx(0.8, abs=0.03)


def test_detectable_slope_has_the_stated_power_by_monte_carlo():
    sd, n = 0.3, 3
    beta = detectable_slope(sd, STRENGTHS, n)
    x = np.repeat(STRENGTHS, n)
    y = beta * x + np.random.default_rng(4).normal(0, sd, (40_000, len(x)))
    rates = []
    for row in y[:300]:   # a few through the library's own OLS, the rest vectorised
        rates.append(ols_slope(pd.DataFrame({"strength": x, "v": row}), "v")[1] > 0)
    xc = x - x.mean()
    slope = (y - y.mean(1, keepdims=True)) @ xc / (xc @ xc)
    resid = y - y.mean(1, keepdims=True) - slope[:, None] * xc
    low = slope - sps.t.ppf(0.975, len(x) - 2) * np.sqrt((resid ** 2).sum(1) / (len(x) - 2) / (xc @ xc))
    assert np.array_equal(np.array(rates), low[:300] > 0)
    assert (low > 0).mean() == pytest.approx(0.8, abs=0.03)
    assert detectable_slope(1.0, (0.0, 1.0), 1) == np.inf


# ---------------------------------------------------------------- calibration under the null

def test_null_false_positive_rates_are_near_five_percent():
    rates = simulate_null_sweeps(n_sweeps=4000, strengths=STRENGTHS, n_seeds=3, seed=0)
    assert set(rates) == {"per_strength", "claim", "trend"}
    for key, rate in rates.items():
        assert 0.02 <= rate <= 0.08, (key, rate)


def test_null_simulation_matches_the_library_rules():
    n_sweeps, delta = 80, 0.3
    rates = simulate_null_sweeps(n_sweeps=n_sweeps, delta=delta, seed=5)
    y = np.random.default_rng(5).normal(0.0, 1.0, (n_sweeps, len(STRENGTHS), 3))
    per, claim, trend = [], [], []
    for sweep in y:
        df = _sweep(dict(zip(STRENGTHS, sweep)))
        per.append(per_strength_table(df, "v", +1, delta, adjust=False)["outcome"].isin([SUPPORTED, CONTRADICTED]))
        claim.append(per_strength_claim("C", "x", df, "v", +1, delta).table["outcome"].isin([SUPPORTED, CONTRADICTED])
                     .any())
        trend.append(trend_claim("C", "x", df, "v", +1, delta).verdict in (SUPPORTED, CONTRADICTED))
    assert rates["per_strength"] == pytest.approx(np.mean(per))
    assert rates["claim"] == pytest.approx(np.mean(claim)) and rates["trend"] == pytest.approx(np.mean(trend))
    assert simulate_null_sweeps(n_sweeps=200, delta=100.0)["claim"] == 0.0      # everything negligible
