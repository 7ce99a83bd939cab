import numpy as np
import pytest

from sslgeo_lib.probes import knn_accuracy, linear_probe, parameter_retention


def _clusters(n, seed, spread=0.1):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    centres = np.eye(8)[:4] * 5
    return centres[y] + spread * rng.standard_normal((n, 8)), y


def test_knn_on_separated_clusters_is_perfect_and_on_noise_is_chance():
    x, y = _clusters(400, 0)
    q, qy = _clusters(200, 1)
    assert knn_accuracy(x, y, q, qy) == 1.0
    rng = np.random.default_rng(2)
    noise = knn_accuracy(rng.standard_normal((2000, 8)), rng.integers(0, 4, 2000),
                         rng.standard_normal((2000, 8)), rng.integers(0, 4, 2000))
    assert noise == pytest.approx(0.25, abs=0.04)


def test_knn_is_cosine():
    bank = np.array([[1.0, 0.0], [0.0, 1.0]])
    # the query is far in Euclidean distance from the first bank point but points the same way
    assert knn_accuracy(bank, np.array([0, 1]), np.array([[100.0, 1.0]]), np.array([0]), k=1) == 1.0


def test_linear_probe_separable_vs_random_labels():
    x, y = _clusters(600, 0, spread=1.0)
    q, qy = _clusters(300, 1, spread=1.0)
    out = linear_probe(x, y, q, qy)
    assert out["accuracy"] > 0.97 and out["C"] in (1e-2, 1e-1, 1.0)
    shuffled = linear_probe(x, np.random.default_rng(0).permutation(y), q, qy)
    assert shuffled["accuracy"] < 0.45


def test_parameter_retention_known_answers():
    rng = np.random.default_rng(0)
    n, k = 300, 4
    area = rng.uniform(0.1, 1, (n, k))
    flip = rng.integers(0, 2, (n, k)).astype(float)
    hue = rng.uniform(-0.1, 0.1, (n, k))
    clean = rng.standard_normal((n, 6))
    shift = np.stack([area, flip, np.zeros_like(area)], -1) @ rng.standard_normal((3, 6))  # hue not encoded
    views = clean[:, None, :] + shift
    out = parameter_retention(clean, views, {"area": area, "flip": flip, "hue": hue,
                                             "contrast": np.ones((n, k))})
    assert out["area"] > 0.99 and out["flip"] == 1.0
    assert out["hue"] < 0.05 and np.isnan(out["contrast"])
