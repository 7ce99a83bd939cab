import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar

from sslgeo_lib.training.losses import info_nce_euclidean
from sslgeo_lib.synthetic import (LinearProblem, ToyManifold, column_gains, push_forward, relative_gains,
                                  train_linear)


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


def test_trained_linear_map_matches_the_prediction():
    p = LinearProblem(lam=np.array([1.0, 0.3, 0.1, 0.03]), a=np.ones(4))
    _, trained = train_linear(p, 0.5, seed=0, steps=600)
    measured = relative_gains(column_gains(trained))
    predicted = relative_gains(p.equilibrium_gains(0.5))
    assert np.abs(np.log10(measured) - np.log10(predicted)).mean() < 0.1


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
