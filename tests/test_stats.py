import numpy as np
import pandas as pd
import pytest

from sslgeo_lib import stats
from sslgeo_lib.stats import (CONTRADICTED, INCONCLUSIVE, SUPPORTED, bootstrap_slope, mean_ci, per_strength_claim,
                              trend_claim, verdict_from_cis)


def test_mean_ci_is_the_t_interval():
    m, lo, hi = mean_ci([1.0, 2.0, 3.0])
    # mean 2, sd 1, n 3: half width t_{0.975, 2} / sqrt(3) = 4.302653 / 1.732051
    assert m == 2.0 and hi - m == pytest.approx(4.302653 / np.sqrt(3), rel=1e-6) and m - lo == pytest.approx(hi - m)
    assert np.isnan(mean_ci([5.0])[1]) and mean_ci([5.0])[0] == 5.0
    assert mean_ci([1.0, np.nan, 3.0])[0] == 2.0


@pytest.mark.parametrize("lows,highs,direction,expected", [
    ([0.1, 0.2], [0.3, 0.4], +1, SUPPORTED),
    ([0.1, -0.2], [0.3, 0.4], +1, INCONCLUSIVE),
    ([0.1, -0.4], [0.3, -0.1], +1, CONTRADICTED),   # one opposite CI refutes "for every s"
    ([-0.3, -0.4], [-0.1, -0.2], -1, SUPPORTED),
    ([0.1], [np.nan], +1, INCONCLUSIVE),            # fewer than 2 seeds: no CI
    ([], [], +1, INCONCLUSIVE),
])
def test_verdict_rule(lows, highs, direction, expected):
    assert verdict_from_cis(lows, highs, direction) == expected


def _sweep(values_by_strength):
    return pd.DataFrame([{"strength": s, "seed": k, "v": v} for s, vs in values_by_strength.items()
                         for k, v in enumerate(vs)])


def test_bootstrap_slope_of_exact_linear_data():
    df = _sweep({s: [2 * s + 1] * 3 for s in (0.0, 0.5, 1.0)})
    slope, lo, hi = bootstrap_slope(df, "v")
    assert slope == pytest.approx(2.0) and lo == pytest.approx(2.0) and hi == pytest.approx(2.0)


def test_bootstrap_slope_of_noise_straddles_zero():
    r = np.random.default_rng(0)
    df = _sweep({s: list(r.standard_normal(5)) for s in (0.0, 0.5, 1.0, 1.5)})
    _, lo, hi = bootstrap_slope(df, "v")
    assert lo < 0 < hi


def test_per_strength_claim_reports_the_weakest_strength():
    df = _sweep({0.0: [0, 0, 0], 0.5: [0.1, 0.12, 0.11], 1.0: [0.5, 0.52, 0.51]})
    result = per_strength_claim("C", "gap", df, "v", +1)
    assert result.verdict == SUPPORTED and result.n_seeds == 3
    assert "weakest s = 0.5" in result.statistic and result.estimate == pytest.approx(0.11)
    one_seed = per_strength_claim("C", "gap", df[df.seed == 0], "v", +1)
    assert one_seed.verdict == INCONCLUSIVE and "fewer than 2 seeds" in one_seed.verdict_text()
    assert "no CI" in one_seed.ci_text()


def test_trend_claim_direction():
    df = _sweep({s: [1 - s + 0.01 * k for k in range(3)] for s in (0.0, 0.5, 1.0)})
    assert trend_claim("C", "x", df, "v", -1).verdict == SUPPORTED
    assert trend_claim("C", "x", df, "v", +1).verdict == CONTRADICTED


def test_ci_table_groups():
    table = stats.ci_table(_sweep({0.0: [1.0, 3.0], 1.0: [2.0, 2.0]}), "v")
    assert table["mean"].tolist() == [2.0, 2.0] and table["n_seeds"].tolist() == [2, 2]


def test_per_strength_table():
    df = _sweep({0.0: [0, 0, 0], 0.5: [-0.2, -0.21, -0.22], 1.0: [0.5, 0.52, 0.51]})
    table = stats.per_strength_table(df, "v", +1)
    assert table["strength"].tolist() == [0.5, 1.0] and table["verdict"].tolist() == [CONTRADICTED, SUPPORTED]
