import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.optimize import minimize_scalar

from sslgeo_lib.synthetic import (
    COLLAPSE_THRESHOLD,
    LinearProblem,
    ToyManifold,
    collapse_counts,
    column_gains,
    fit_improvement,
    linear_theory_table,
    push_forward,
    relative_gains,
    theory_verdicts,
    toy_geometry,
    train_linear,
    train_toy,
)
from sslgeo_lib.training.losses import info_nce_euclidean

LINEAR_GRAD_BOUND = 0.05  # full-gradient norm after training, small linear problem (from about 0.6 at init)
TOY_GRAD_BOUND = 0.15  # the same for the small toy (from about 2 at init)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one thread is fastest, and a second one stalls on a shared, loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("lam,sa", [(1.0, 0.0625), (0.02, 0.25), (0.001, 4.0), (0.5, 0.5)])
def test_equilibrium_gain_minimises_the_separable_loss(lam, sa):
    b = lam + sa
    loss = lambda v: v * sa - 0.5 * math.log1p(v * b) - v * b / (2 * (1 + v * b))  # noqa: E731
    best = minimize_scalar(loss, bounds=(0, 1e4), method="bounded", options={"xatol": 1e-10}).x
    problem = LinearProblem(lam=np.array([lam]), a=np.array([sa]))
    assert problem.equilibrium_gains(1.0)[0] ** 2 == pytest.approx(best, rel=1e-4)


def test_gains_collapse_as_augmentation_outweighs_the_data():
    p = LinearProblem.default(8)
    for s in (0.5, 1.0, 2.0):
        g = relative_gains(p.equilibrium_gains(s))
        assert np.all(np.diff(g) < 0)  # smaller data variance, smaller gain
    assert relative_gains(p.equilibrium_gains(2.0))[-1] < relative_gains(p.equilibrium_gains(0.5))[-1]


def test_euclidean_info_nce_collinear_value():
    z = torch.ones(5, 3)
    assert info_nce_euclidean(z, z.clone()).item() == pytest.approx(math.log(9), rel=1e-6)


def test_trained_linear_map_converges_and_matches_the_prediction():
    p = LinearProblem(lam=np.array([1.0, 0.3, 0.1, 0.03]), a=np.ones(4))
    fit = train_linear(p, 0.5, seed=0, steps=300)
    assert fit.grad_norm < LINEAR_GRAD_BOUND and fit.grad_norm < 0.1 * fit.grad_norm_init
    measured = np.log10(relative_gains(column_gains(fit.trained)))
    theory = np.abs(measured - np.log10(relative_gains(p.equilibrium_gains(0.5)))).mean()
    data_only = np.abs(measured - np.log10(relative_gains(p.data_only_gains()))).mean()
    assert theory < 0.1 and data_only - theory > 0.05  # beats the data-only alternative by more than delta


def test_data_only_gains_are_the_closed_forms_large_strength_limit():
    p = LinearProblem.default(8)
    np.testing.assert_allclose(relative_gains(p.equilibrium_gains(1e3)), relative_gains(p.data_only_gains()), rtol=1e-4)
    other = LinearProblem(lam=p.lam, a=np.linspace(0.1, 3, 8))  # the augmentation plays no part
    np.testing.assert_array_equal(other.data_only_gains(), p.data_only_gains())


def _hand_table():
    """Two strengths, one seed, two directions, relative gains chosen by hand."""
    return pd.DataFrame({"strength": [0.5, 0.5, 2.0, 2.0], "seed": 0, "direction": [0, 1, 0, 1],
                         "pred": [1.0, 0.1, 1.0, 0.01], "data_only": [1.0, 0.01, 1.0, 0.01],
                         "one_layer": [1.0, 0.1, 1.0, 0.001], "two_layer_h": [1.0, 0.5, 1.0, 0.05],
                         "two_layer_z": [1.0, 0.05, 0.09, 0.05]})


def test_fit_improvement_known_values():
    out = fit_improvement(_hand_table()).iloc[0]
    # |log10 errors| per row: theory 0, 0, 0, 1; data-only 0, 1, 0, 1; no collapse 0, 1, 0, 3
    assert out["error_theory"] == pytest.approx(0.25) and out["error_data_only"] == pytest.approx(0.5)
    assert out["improvement_data_only"] == pytest.approx(0.25) and out["improvement_no_collapse"] == pytest.approx(0.75)
    assert out["improvement"] == pytest.approx(0.25)  # the better foil (data-only here) decides


@pytest.mark.parametrize("measured,sign", [("pred", +1), ("no_collapse", -1), ("data_only", -1)])
def test_fit_improvement_fails_when_the_map_follows_a_foil(measured, sign):
    """The null cases: a trained map that does not collapse, or follows the data spectrum alone, must not
    come out as supporting the theory (the single data-only foil gave +0.234 dex for a map with no collapse)."""
    table = linear_theory_table(LinearProblem.default(12), [0.25, 0.5, 1.0, 2.0], [0], steps=1)
    fake = {"pred": table["pred"], "no_collapse": 1.0, "data_only": table["data_only"]}[measured]
    out = fit_improvement(table.assign(one_layer=fake)).iloc[0]
    assert np.sign(out["improvement"]) == sign and abs(out["improvement"]) > 0.05


def test_collapse_counts_known_values():
    counts = collapse_counts(_hand_table())
    assert list(counts.columns) == ["strength", "seed", "measured", "predicted", "data_only", "two_layer_h",
                                    "two_layer_z"]
    assert COLLAPSE_THRESHOLD == 0.1  # 0.1 itself is not below it
    np.testing.assert_array_equal(counts[["measured", "predicted", "data_only", "two_layer_h", "two_layer_z"]],
                                  [[0, 0, 1, 0, 1], [1, 1, 1, 1, 2]])


def test_linear_theory_table_records_the_gradient_norm():
    table = linear_theory_table(LinearProblem.default(3), [0.5], [0], steps=20)
    columns = {"pred", "data_only", "one_layer", "grad_norm", "grad_norm_init", "grad_norm_two_layer"}
    assert columns <= set(table.columns)
    assert len(table) == 3 and table["grad_norm"].nunique() == 1 and (table["grad_norm"] > 0).all()
    assert len(collapse_counts(table)) == 1


def test_theory_verdicts_apply_the_rule_and_say_what_their_intervals_cover():
    linear = pd.concat([_hand_table().assign(seed=k, one_layer=[1.0, 0.1, 1.0, 0.001 * (1 + 0.2 * k)])
                        for k in range(3)])
    toy = pd.DataFrame([{"strength": s, "seed": k, "rho_data": 1.0 if s == 0 else 0.1 * (1 + 0.1 * k),
                         "locality_exact": 0.1 + 0.01 * k, "alpha_exact": 0.5, "alpha_random": 0.2 + 0.01 * k}
                        for s in (0.0, 0.5, 1.0) for k in range(3)])
    out = theory_verdicts(linear, toy)
    assert out["primary"].estimate == pytest.approx(0.25, abs=0.01)  # data-only error 0.5 - theory error about 0.25
    keys = ("primary", "data_only", "no_collapse", "toy_rho", "toy_locality", "toy_alpha")
    assert {k: v.verdict for k, v in out.items()} == {k: "supported" for k in keys}
    for v in out.values():  # toy seeds: the optimiser's and the toy data's randomness only
        assert "toy data's randomness only" in v.covers and "training and evaluation randomness" not in v.covers
    flipped = theory_verdicts(linear, toy.assign(locality_exact=-toy["locality_exact"]))
    assert flipped["toy_locality"].verdict == "contradicted"


@pytest.fixture(scope="module")
def small_toy():
    """A small C7 toy trained at s = 0.5 (about 2 s), and the caller's RNG state around its training."""
    toy = ToyManifold(ambient=10, content_dim=2)
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    fit = train_toy(toy, 0.5, seed=0, width=32, out_dim=8, steps=300)
    return toy, fit, before, torch.random.get_rng_state()


def test_train_toy_converges_and_keeps_the_global_rng(small_toy):
    _, fit, before, after = small_toy
    assert torch.equal(before, after)
    assert fit.grad_norm < TOY_GRAD_BOUND and fit.grad_norm < 0.1 * fit.grad_norm_init


def test_toy_suppresses_the_augmentation_against_the_data_and_keeps_a_local_subspace(small_toy):
    toy, fit, _, _ = small_toy
    geo = toy_geometry(toy, fit.encoder, fit.projector, 0.5, seed=0, n_anchor=200, n_bank=1000, k=20)
    assert geo["rho_data"] < 1 and geo["locality_exact"] > 0 and geo["locality_estimated"] > 0
    assert geo["rho_data"] < geo["rho_exact"]  # random directions of R^D are a weaker foil than the data
    assert geo["invariance_z"] > geo["invariance_h"]


def test_toy_geometry_is_exact():
    toy = ToyManifold(ambient=10, content_dim=2)
    rng = np.random.default_rng(0)
    theta, content = toy.sample(5, rng)
    basis = toy.tangent_plane(theta)  # (5, 10, 3)
    for b in basis:
        np.testing.assert_allclose(b.T @ b, np.eye(3), atol=1e-12)
    eps = 1e-6  # the orbit's derivative is radius x augmentation direction
    deriv = (toy.embed(theta + eps, content) - toy.embed(theta - eps, content)) / (2 * eps)
    np.testing.assert_allclose(deriv, toy.radius * toy.augmentation_direction(theta), atol=1e-6)
    moved = toy.augment(theta, 1.0, rng)  # the group action keeps the content coordinates
    np.testing.assert_allclose(toy.embed(moved, content) @ toy.basis[:, 2:], content, atol=1e-12)
    assert toy.dim == 3


def test_push_forward_through_a_linear_encoder():
    enc = torch.nn.Linear(4, 3, bias=False)
    x = np.random.default_rng(0).standard_normal((2, 4))
    dirs = np.random.default_rng(1).standard_normal((2, 4, 2))
    expected = np.einsum("dk,nkj->ndj", enc.weight.detach().numpy(), dirs)
    np.testing.assert_allclose(push_forward(enc, x, dirs), expected, atol=1e-6)


def test_theory_tables_are_computed_once_and_read_back_exactly(tmp_path, monkeypatch):
    import sslgeo_lib.synthetic as synthetic
    from sslgeo_lib.presets import TheorySettings

    monkeypatch.setenv("SSLGEO_CACHE", str(tmp_path))
    t = TheorySettings(strengths=(0.5,), toy_strengths=(1.0,), seeds=(0,), n_dims=4, steps=20)
    linear, toy = synthetic.theory_tables(t)
    assert len(linear) == 4 and len(toy) == 1 and len(list((tmp_path / "theory").glob("*.json"))) == 1
    monkeypatch.setattr(synthetic, "linear_theory_table", lambda *a, **k: pytest.fail("recomputed"))
    monkeypatch.setattr(synthetic, "toy_table", lambda *a, **k: pytest.fail("recomputed"))
    again = synthetic.theory_tables(t)
    pd.testing.assert_frame_equal(again[0], linear)  # bit for bit: JSON keeps every float's exact value
    pd.testing.assert_frame_equal(again[1], toy)
    other = TheorySettings(strengths=(0.5,), toy_strengths=(1.0,), seeds=(1,), n_dims=4, steps=20)
    with pytest.raises(pytest.fail.Exception, match="recomputed"):  # other settings: another entry
        synthetic.theory_tables(other)
    from sslgeo_lib import store

    real_hash = store.code_hash
    monkeypatch.setattr(store, "code_hash", lambda modules=None: real_hash(modules) + (
        "edited" if modules is not None and "geometry.py" in modules else ""))
    with pytest.raises(pytest.fail.Exception, match="recomputed"):  # the geometry measuring the toy changed
        synthetic.theory_tables(t)
