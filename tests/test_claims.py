"""Every verdict path of every claim on sweep tables whose answer is known, and the sentence glued for it."""
import re

import numpy as np
import pandas as pd
import pytest

from sslgeo_lib import claims
from sslgeo_lib.stats import CONTRADICTED, MIXED, NEGLIGIBLE, SUPPORTED

STRENGTHS = (0.0, 0.25, 0.5, 1.0, 1.5)
NOISE = (-1.0, 0.0, 1.0)  # three seeds: mean 0, sd 1 (times the noise scale)


def _layers(effect, base=0.5, noise=1e-3, arch=0.0, **extra):
    """Per (strength, seed): layer h at `base`, z0 (the projector at initialisation) at base + arch (what the
    architecture alone does), layer z at base + arch + effect(s) + seed noise (what training added)."""
    rows = []
    for s in STRENGTHS:
        for k, e in enumerate(NOISE):
            rows += [{"strength": s, "seed": k, "layer": "h", "value": base, **extra},
                     {"strength": s, "seed": k, "layer": "z0", "value": base + arch, **extra},
                     {"strength": s, "seed": k, "layer": "z", "value": base + arch + effect(s) + noise * e, **extra}]
    return pd.DataFrame(rows)


def _invariance(effect, arch=0.0):
    df = _layers(effect, arch=arch).rename(columns={"value": "invariance"})
    return pd.concat([df.assign(eval="train"), df.assign(eval="fixed")])


def _ranks(effect, arch=0.0, top_m=80.0):
    """Effective ranks: h 100, z0 100 exp(arch), z 100 exp(arch + effect(s)), h's top m 80, J 50 - 10 s."""
    rows = []
    for s in STRENGTHS:
        for k, e in enumerate(NOISE):
            for layer, v in (("h", 100.0), ("z0", 100.0 * np.exp(arch)), ("h_top_m", top_m),
                             ("z", 100.0 * np.exp(arch + effect(s) + 1e-3 * e)), ("J", 50 - 10 * s)):
                rows.append({"strength": s, "seed": k, "layer": layer, "measure": "effective rank", "value": v})
    return pd.DataFrame(rows)


def _retention(effect, arch=0.0):
    """Held-out R2: h 0.6, z0 0.6 + arch, z 0.6 + arch + effect(s), z / ||z|| as z."""
    rows = []
    for s in STRENGTHS:
        for k, e in enumerate(NOISE):
            z = 0.6 + arch + effect(s) + 1e-3 * e
            for layer, v in (("h", 0.6), ("z0", 0.6 + arch), ("z", z), ("z_unit", z)):
                rows += [{"strength": s, "seed": k, "layer": layer, "parameter": p, "kind": "R2", "value": v}
                         for p in ("area", "hue")]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("effect,expected", [
    (lambda s: 0.1 * s, SUPPORTED),            # z more invariant at every s > 0
    (lambda s: 0.001, NEGLIGIBLE),             # a real but tiny difference: below delta = 0.02
    (lambda s: -0.1 if s == 0.25 else 0.1, CONTRADICTED),  # one strength the other way refutes "every s"
    (lambda s: 0.005 if s == 0.25 else 0.2, MIXED),
])
def test_c2_verdict_paths(effect, expected):
    v = claims.invariance_verdicts(_invariance(effect))
    assert v["primary"].verdict == expected
    if expected == MIXED:
        assert v["primary"].text == "supported for s >= 0.5; negligible at 0.25"
    sentence = claims.reading(v["primary"], "the projector's invariance minus the encoder's")
    assert sentence.startswith("The projector's invariance minus the encoder's: " + v["primary"].verdict_text())
    assert "at s = 0.25" in sentence and "smallest effect of interest ±0.020" in sentence


def test_c2_trend_is_read_at_the_fixed_strength():
    v = claims.invariance_verdicts(_invariance(lambda s: 0.1 * s))
    assert v["trend"].verdict == SUPPORTED and v["trend"].estimate == pytest.approx(0.1)


def test_c1_gap_is_the_learned_part_acc_z0_minus_acc_z():
    df = _layers(lambda s: -0.05).rename(columns={"value": "linear"}).assign(knn=0.3)
    v = claims.transfer_verdicts(df)
    assert v["primary"].verdict == SUPPORTED and v["primary"].estimate == pytest.approx(0.05, abs=1e-3)
    assert v["raw"].verdict == SUPPORTED and v["raw"].estimate == pytest.approx(0.05, abs=1e-3)
    assert v["knn"].verdict == NEGLIGIBLE  # no kNN gap at all
    flipped = claims.transfer_verdicts(_layers(lambda s: 0.05).rename(columns={"value": "linear"}).assign(knn=0.3))
    assert flipped["primary"].verdict == CONTRADICTED


def test_an_effect_of_the_architecture_alone_is_not_learning():
    """z0 (a random projector on the same h) already loses 5 points and z loses no more: the raw gap reads
    supported (the v2 defect an untrained sweep showed), the learned gap negligible. The same for C2, C3 and C5."""
    c1 = claims.transfer_verdicts(_layers(lambda s: 0.0, arch=-0.05).rename(columns={"value": "linear"})
                                  .assign(knn=0.3))
    assert c1["raw"].verdict == SUPPORTED and c1["primary"].verdict == NEGLIGIBLE
    c2 = claims.invariance_verdicts(_invariance(lambda s: 0.0, arch=0.1))
    assert c2["raw"].verdict == SUPPORTED and c2["primary"].verdict == NEGLIGIBLE
    c3 = claims.dimension_verdicts(_ranks(lambda s: 0.0, arch=-0.4))
    assert c3["raw"].verdict == SUPPORTED and c3["primary"].verdict == NEGLIGIBLE
    c5 = claims.retention_verdicts(_retention(lambda s: 0.0, arch=-0.2))
    assert c5["raw"].verdict == SUPPORTED and c5["primary"].verdict == NEGLIGIBLE


def test_c3_log_ratio_and_its_trend():
    v = claims.dimension_verdicts(_ranks(lambda s: -0.5 - 0.4 * s, arch=-0.2))
    assert v["primary"].verdict == SUPPORTED and v["trend"].verdict == SUPPORTED
    assert v["primary"].estimate == pytest.approx(-0.6, abs=1e-2)  # the learned part at s = 0.25, arch removed
    assert v["raw"].estimate == pytest.approx(-0.8, abs=1e-2)
    assert v["trend"].estimate == pytest.approx(-0.4, abs=1e-3) and v["jacobian"].verdict == SUPPORTED
    assert v["step"].estimate == pytest.approx(-0.1, abs=1e-2)  # from s = 0 (-0.5) to 0.25 (-0.6)
    # against h's top-m principal components: log(z / 80) = -0.7 - 0.4 s + log(100 / 80)
    assert v["top_m"].estimate == pytest.approx(-0.8 + np.log(100 / 80), abs=1e-2)


def test_c4_locality_null_is_not_supported():
    """A kept subspace that ignores its point has alpha(A_i, T_i) = alpha(A_i, T_j): the gap is noise around 0."""
    rng = np.random.default_rng(0)
    rows = []
    for s in STRENGTHS:
        for k in range(3):
            for d_mode in ("fixed", "local"):
                for r_mode in ("erank", "d", "2d"):
                    gap = rng.normal(0, 0.002)
                    rows.append({"strength": s, "seed": k, "d_mode": d_mode, "r_mode": r_mode, "alpha": 0.5,
                                 "alpha_other": 0.5 - gap, "locality_gap": gap, "locality_gap_no_radial": gap,
                                 "locality_gap_same_class": gap, "alpha_global": 0.6,
                                 "alpha_random": 0.1, "d": 8, "r": 20, "rho_data": 1.0, "rho_random": 5.0,
                                 "rho_normalized": 4.0})
    v = claims.tangent_verdicts(pd.DataFrame(rows))
    assert v["primary"].verdict == NEGLIGIBLE and v["rho"].verdict == NEGLIGIBLE
    assert v["same_class"].verdict == NEGLIGIBLE
    assert v["vs_global"].verdict == CONTRADICTED  # v1's foil beats even a perfect null: why it is secondary
    assert v["rho_random"].verdict == CONTRADICTED  # and v1's rho reads "amplified" for a neutral projector


def test_c4_estimator_bias_in_rho_is_removed_by_the_control():
    """rho_data below 1 at every strength, s = 0 included: the estimators of U and T, not augmentation, made it."""
    rows = []
    for s in STRENGTHS:
        for k, e in enumerate(NOISE):
            rows += [{"strength": s, "seed": k, "d_mode": d, "r_mode": r, "alpha": 0.5, "alpha_other": 0.5,
                      "locality_gap": 0.0, "locality_gap_no_radial": 0.0, "locality_gap_same_class": 0.0,
                      "alpha_global": 0.5, "alpha_random": 0.1, "d": 8, "r": 20,
                      "rho_data": 0.6 * (1 + 0.01 * e), "rho_random": 5.0, "rho_normalized": 4.0}
                     for d in ("fixed", "local") for r in ("erank", "d", "2d")]
    v = claims.tangent_verdicts(pd.DataFrame(rows))
    assert v["rho_raw"].verdict == SUPPORTED  # the unpaired ratio is fooled by the estimator's bias
    assert v["rho"].verdict == NEGLIGIBLE  # the headline, against each seed's s = 0 run: nothing is left


def test_reading_quotes_the_contradicting_strength():
    v = claims.invariance_verdicts(_invariance(lambda s: -0.1 if s == 1.0 else 0.3))
    sentence = claims.reading(v["primary"], "the gap")
    assert v["primary"].verdict == CONTRADICTED
    assert re.search(r"-0\.100 \[-?[0-9.]+, -?[0-9.]+\] at s = 1\b", sentence), sentence


def test_c5_retention_gap():
    v = claims.retention_verdicts(_retention(lambda s: -0.1 - 0.05 * s, arch=-0.1))
    assert v["primary"].verdict == SUPPORTED and v["trend"].verdict == SUPPORTED
    assert (v["primary"].estimate == pytest.approx(0.1125, abs=1e-2)
            and v["raw"].estimate == pytest.approx(0.2125, abs=1e-2))
    assert v["unit"].verdict == SUPPORTED


def test_verdict_table_lists_every_strength_of_every_reading():
    v = claims.invariance_verdicts(_invariance(lambda s: 0.1 * s))
    table = claims.verdict_table(v)
    assert len(table) == 3 * 4 and set(table["outcome"]) == {SUPPORTED}  # learned at both s_eval, and raw


def test_power_table_uses_the_measured_noise():
    df = _layers(lambda s: 0.1).rename(columns={"value": "v"})
    values = {"C2": df[df.layer == "z"][["strength", "seed"]].assign(value=df[df.layer == "z"]["v"].to_numpy())}
    table = claims.power_table(values, {"cpu": (3, 4)})
    assert table["seed-to-seed sd"].iloc[0] == pytest.approx(1e-3)
    assert table["detectable, cpu"].iloc[0] == pytest.approx(4.42e-3, rel=0.02)  # 4.42 sd: at all 4 strengths at once


def _shape_rows(depth, width, strength, seed, **values):
    base = {"acc_h": 0.5, "C1": 0.0, "I_h": 0.3, "C2": 0.0, "log_erank_h": 3.0, "C3": 0.0, "C4": 0.0,
            "retention_h": 0.5, "C5": 0.0}
    return {"depth": depth, "width": width, "strength": strength, "seed": seed, **base, **values}


def test_shape_verdicts_pair_depth_zero_with_depth_two_by_strength_and_seed():
    """Known answers: depth 0 more invariant by 0.1 (supported), rank unchanged up to noise far below delta
    (negligible), accuracy higher by 0.05 (contradicts 'transfers worse'); a depth-2 run at another width must
    not be used as the reference."""
    import pandas as pd

    from sslgeo_lib.claims import shape_verdicts

    rows = []
    for s in (0.25, 1.0):
        for k in range(4):
            jitter = 0.002 * (k - 1.5)
            rows.append(_shape_rows(2, 512, s, k))
            rows.append(_shape_rows(2, 2048, s, k, I_h=0.9, acc_h=0.1))  # not the reference
            rows.append(_shape_rows(0, 512, s, k, I_h=0.4 + jitter, log_erank_h=3.0 + jitter / 10,
                                    acc_h=0.55 + jitter))
    v = shape_verdicts(pd.DataFrame(rows))
    assert v["primary"].verdict == "supported" and abs(v["primary"].estimate - 0.1) < 0.01
    assert v["rank"].verdict == "negligible"
    assert v["transfer"].verdict == "contradicted"


def test_progress_verdicts_read_each_point_with_its_claims_rule():
    import pandas as pd

    from sslgeo_lib.claims import progress_verdicts

    rows = []
    for progress, gap in ((0.25, 0.0), (0.5, 0.05), (1.0, 0.1)):
        for s in (0.5, 1.0):
            for k in range(3):
                j = 0.002 * (k - 1)
                rows.append({"strength": s, "seed": k, "epoch": int(progress * 20), "progress": progress,
                             "C1_knn": gap + j, "C2": gap + j, "C3": -10 * gap + j})
    v = progress_verdicts(pd.DataFrame(rows))
    assert v["C2_25"].verdict == "negligible" and v["C2_50"].verdict == "supported"
    assert v["C3_100"].verdict == "supported" and v["primary"] is v["C2_100"]


def _groups_table(effects: dict, strengths=(1.0,), noise=1e-3):
    """A measures.group_table-like frame: per group, strength and three seeds, every primary statistic at
    effects[group] (the same for C1-C5) plus seed noise."""
    rows = []
    for g, effect in effects.items():
        for s in strengths:
            for k, e in enumerate(NOISE):
                rows.append({"method": g, "strength": s, "seed": k,
                             **{c: effect + noise * e for c in ("C1", "C2", "C3", "C4", "C5")}})
    return pd.DataFrame(rows)


def test_group_verdicts_read_each_group_and_name_them_together():
    df = _groups_table({"up": 0.3, "down": -0.3, "flat": 0.0005})
    v = claims.group_verdicts(df, "method")
    assert v["up"]["C2"].verdict == SUPPORTED and v["down"]["C2"].verdict == CONTRADICTED
    assert v["flat"]["C2"].verdict == NEGLIGIBLE
    assert v["up"]["C3"].verdict == CONTRADICTED and v["down"]["C3"].verdict == SUPPORTED  # C3 predicts < 0
    assert v["up"]["C2"].table["level"].iloc[0] == 0.95  # rule v3: every strength at the plain level
    assert "contradictions Holm-adjusted over 1 strength x 3 groups" in v["up"]["C2"].covers
    line = claims.across_groups({g: v[g]["C2"] for g in ("up", "down", "flat")}, "C2", "I(z) - I(h)")
    assert line.verdict == CONTRADICTED
    assert line.text == "contradicted for down; supported for up; negligible for flat"
    assert line.estimate == pytest.approx(-0.3, abs=0.01) and "weakest: down at s = 1" in line.statistic
    both = claims.across_groups({g: v[g]["C2"] for g in ("up", "flat")}, "C2", "I(z) - I(h)")
    assert both.verdict == MIXED and "weakest: flat" in both.statistic
    low = claims.across_groups({g: v[g]["C3"] for g in ("down", "flat")}, "C3", "log erank ratio")  # C3 predicts < 0
    assert (low.verdict == MIXED and "weakest: flat" in low.statistic
            and low.text == "supported for down; negligible for flat")


def test_group_verdicts_on_null_groups_keep_the_false_positive_rate():
    """Groups with no effect at all (sd 1 over 3 seeds, 2 strengths): over 300 simulated pages, each of C1-C5 read
    in 3 groups comes out supported (every s > 0) or contradicted (after Holm over strengths x groups) for some group
    in at most about 5% of pages. (The ranged text's per-strength words are plain-level outcomes, as rule v3 says.)"""
    rng = np.random.default_rng(0)
    hits = dict.fromkeys(claims.PRIMARY, 0)
    for _ in range(300):
        rows = [{"method": g, "strength": s, "seed": k, **{c: rng.standard_normal() for c in claims.PRIMARY}}
                for g in ("a", "b", "c") for s in (0.5, 1.0) for k in range(3)]
        v = claims.group_verdicts(pd.DataFrame(rows), "method")
        for c in hits:
            hits[c] += any(v[g][c].verdict in (SUPPORTED, CONTRADICTED) or "contradicted" in v[g][c].text
                           for g in "abc")
    assert all(n / 300 <= 0.08 for n in hits.values()), hits


def test_the_forest_plot_puts_each_claim_in_delta_units_with_the_prediction_to_the_right():
    import matplotlib

    matplotlib.use("Agg")
    from sslgeo_lib import plots

    df = _groups_table({"up": 0.3, "down": -0.3, "flat": 0.0005})
    v = claims.group_verdicts(df, "method")
    rows = claims.forest_rows([v["up"]["C2"], v["up"]["C3"], v["flat"]["C5"]])
    assert rows["verdict"].tolist() == [SUPPORTED, CONTRADICTED, NEGLIGIBLE]
    assert rows["direction"].tolist() == [+1, -1, +1]  # each claim's predicted sign, from claims.PRIMARY
    fig = plots.forest_plot(rows)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "C5: learned retention(z0) - retention(z) (flat)", "C3: log(erank(z) / erank(z0)) (up)",
        "C2: learned I(z) - I(z0) (up)"]
    diamonds = {round(float(ln.get_ydata()[0])): float(ln.get_xdata()[0]) for ln in ax.lines if ln.get_marker() == "D"}
    # C2 up 0.3 with delta 0.02: +15 deltas; C3 up 0.3 against a predicted fall (delta log 1.1): left of 0
    assert (diamonds[2] == pytest.approx(0.3 / 0.02, rel=0.01)
            and diamonds[1] == pytest.approx(-0.3 / np.log(1.1), rel=0.01))
    assert abs(diamonds[0]) < 1  # inside the negligible band
    colours = {round(float(ln.get_ydata()[0])): ln.get_color() for ln in ax.lines if ln.get_marker() == "D"}
    assert colours[2] == plots.VERDICT_COLORS[SUPPORTED] and colours[1] == plots.VERDICT_COLORS[CONTRADICTED]


@pytest.mark.parametrize("change, message", [
    (lambda r: r.drop(columns="delta"), "missing columns.*delta"),
    (lambda r: r.assign(delta=0.0), "delta must be a positive number"),
    (lambda r: r.assign(direction=0), "direction must be"),
    (lambda r: r.assign(verdict="maybe"), "unknown verdict 'maybe'"),
    (lambda r: r.iloc[:0], "no claims"),
])
def test_the_forest_plot_rejects_bad_rows(change, message):
    from sslgeo_lib import plots

    v = claims.group_verdicts(_groups_table({"up": 0.3, "down": -0.3, "flat": 0.0005}), "method")
    rows = claims.forest_rows([v["up"]["C2"]])
    with pytest.raises(ValueError, match=message):
        plots.forest_plot(change(rows))


def test_the_encoder_stays_put_is_a_negligible_slope_of_i_h():
    flat = claims.invariance_verdicts(_invariance(lambda s: 0.1 * s))  # h at 0.5 everywhere
    assert flat["encoder_stays_put"].verdict == SUPPORTED
    assert flat["encoder_stays_put"].text.startswith("supported (negligible trend")
    moving = _invariance(lambda s: 0.1 * s)
    moving.loc[moving["layer"] == "h", "invariance"] += 0.2 * moving.loc[moving["layer"] == "h", "strength"]
    moving.loc[moving["layer"] == "h", "invariance"] += 1e-3 * moving.loc[moving["layer"] == "h", "seed"]
    v = claims.invariance_verdicts(moving)
    assert v["encoder_stays_put"].verdict == CONTRADICTED and v["encoder_stays_put"].estimate == pytest.approx(0.2)


def test_readings_table_and_gate_sentence():
    from sslgeo_lib import report, stats

    v = claims.invariance_verdicts(_invariance(lambda s: 0.1 * s))
    table = report.readings_table(v, {"primary": "learned (primary)", "raw": "raw"}).splitlines()
    assert table[0] == "| reading | statistic | estimate [interval] | verdict |" and len(table) == 4
    assert (table[2].startswith("| learned (primary) | learned I(z) - I(z0)")
            and "**supported for every s > 0**" in table[2])
    with pytest.raises(ValueError, match="labels name readings the page does not have: \\['nope'\\]"):
        report.readings_table(v, {"nope": "x"})
    gains = pd.DataFrame([{"strength": s, "seed": k, "gain": g + 0.01 * k}
                          for s, g in ((0.0, 0.1), (0.5, 0.0)) for k in range(3)])
    sentence = report.gate_sentence(stats.learned_gate(gains))
    assert "the encoders learned at s = 0 (gain 0.110 [0.085, 0.135])" in sentence
    assert ("they did not learn at s = 0.5 (gain 0.010 [-0.015, 0.035]), "
            "so every claim there reads \"not tested\"" in sentence)
    both = report.gate_sentence({"vicreg": stats.learned_gate(gains), "byol": stats.learned_gate(gains)})
    assert "per group: vicreg: the encoders learned" in both and "; byol: the encoders learned" in both
    assert report.gate_sentence(None).startswith("The learned gate was not applied")
