"""The per-claim tables on a tiny two-seed sweep: shapes, ranges and exact values where they are known."""
import numpy as np
import pytest

from sslgeo_lib import claims
from sslgeo_lib.config import make_preset
from sslgeo_lib.stats import ClaimResult
from sslgeo_lib.sweep import run_table, sweep, training_curves


@pytest.fixture(scope="module")
def setup(cifar):
    p = make_preset("smoke", seeds="[0, 1]", n_test="200", n_anchor="20")
    return p, sweep(p, progress=False)


def _check_verdicts(verdicts):
    assert all(isinstance(v, ClaimResult) and v.n_seeds == 2 for v in verdicts.values())
    assert all(v.verdict in ("supported", "contradicted", "inconclusive") for v in verdicts.values())


def test_invariance_table(setup):
    p, runs = setup
    df = claims.invariance_table(runs, p)
    assert len(df) == len(runs) * 2 * 2
    identity = df[(df.strength == 0) & (df["eval"] == "train")]
    np.testing.assert_allclose(identity["invariance"], 1.0)  # s = 0 views are the image itself
    np.testing.assert_allclose(identity["cosine"], 1.0)
    assert (df["invariance"] <= 1 + 1e-12).all()
    _check_verdicts(claims.invariance_verdicts(df))


def test_transfer_table(setup):
    p, runs = setup
    df = claims.transfer_table(runs, p)
    assert list(df[df.seed == 0].drop_duplicates("layer")["layer"]) == ["h", "hidden1", "z"]
    assert df[["linear", "knn"]].stack().between(0, 1).all()
    assert df["linear"].mean() > 0.15  # better than chance (0.1) even after one epoch
    _check_verdicts(claims.transfer_verdicts(df))


def test_dimension_table(setup):
    p, runs = setup
    df = claims.dimension_table(runs, p, n_id=150)
    er = df[df.measure == "effective rank"]
    dims = {"h": 8 * p.base.encoder_width, "z": p.base.projector_out, "J": p.base.projector_out}
    assert all(1 <= row.value <= dims[row.layer] for row in er.itertuples())
    assert set(df[df.layer == "J"]["measure"]) == {"effective rank"}
    _check_verdicts(claims.dimension_verdicts(df))


def test_tangent_table(setup):
    p, runs = setup
    df = claims.tangent_table(runs, p, tangent_dim=4, k=20)
    assert df[["alpha_local", "alpha_global", "alpha_random"]].stack().between(0, 1).all()
    fixed = df[df.d_mode == "fixed"]
    assert (fixed["d"] == 4).all() and (df["rho"] > 0).all()
    _check_verdicts(claims.tangent_verdicts(df))


def test_retention_table(setup):
    p, runs = setup
    df = claims.retention_table(runs, p)
    assert len(df) == len(runs) * 2 * 11
    acc = df[df.kind == "accuracy"]["value"].dropna()
    assert acc.between(0, 1).all()
    _check_verdicts(claims.retention_verdicts(df))


def test_run_table_and_curves(setup):
    _, runs = setup
    table = run_table(runs)
    assert len(table) == 4 and (table["images/s"] > 0).all()
    loss, knn = training_curves(runs)
    assert set(loss.columns) == {"strength", "seed", "epoch", "loss"} and len(knn) == 4
