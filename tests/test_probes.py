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


def test_a_grid_of_one_c_is_that_cs_fit_on_the_whole_training_set():
    from sslgeo_lib.probes import _accuracy, _standardise, softmax_regression

    x, y = _overlapping(1000, 8)
    q, qy = _overlapping(500, 9)
    out = linear_probe(x, y, q, qy, c_grid=(0.1,), seed=0)
    a, b = _standardise(x, q)
    w, bias, grad = softmax_regression(a, y, 10, 0.1)
    assert out == {"accuracy": _accuracy(w, bias, b, qy), "C": 0.1, "grad": grad}
    assert 0.3 < out["accuracy"] < 0.95


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


def _overlapping(n, seed, n_classes=10, dim=32):
    """Gaussian classes that overlap (a probe's accuracy lies well inside (chance, 1))."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).standard_normal((n_classes, dim)) * 0.6
    y = np.repeat(np.arange(n_classes), n // n_classes)
    return centres[y] + rng.standard_normal((len(y), dim)) * np.linspace(0.5, 3, dim), y


def test_softmax_regression_reaches_scikit_learns_optimum(monkeypatch):
    """The L-BFGS probe minimises the same objective as LogisticRegression(C): run to a tighter gradient than
    the default, it reaches the same coefficients."""
    from sklearn.linear_model import LogisticRegression

    from sslgeo_lib import probes
    from sslgeo_lib.probes import softmax_regression

    monkeypatch.setattr(probes, "PROBE_GRAD_TOL", 1e-9)
    PROBE_GRAD_TOL = 1e-9
    x, y = _overlapping(1000, 0)
    x = (x - x.mean(0)) / x.std(0)
    for c in (0.01, 1.0):
        w, b, grad = softmax_regression(x, y, 10, c)
        ref = LogisticRegression(C=c, tol=1e-10, max_iter=10_000).fit(x, y)
        assert grad < PROBE_GRAD_TOL
        # a softmax is unchanged by a constant added to every class: compare centred coefficients
        ours = w.numpy().T - w.numpy().T.mean(0)
        theirs = ref.coef_ - ref.coef_.mean(0)
        np.testing.assert_allclose(ours, theirs, atol=2e-4)
        np.testing.assert_allclose(b.numpy() - b.numpy().mean(), ref.intercept_ - ref.intercept_.mean(), atol=2e-4)


def test_the_linear_probe_agrees_with_the_scikit_learn_grid_it_replaced():
    """On fixed features, the torch probe and a converged scikit-learn pipeline (the previous implementation)
    choose the same C and reach the same test accuracy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = _overlapping(2000, 1)
    q, qy = _overlapping(1000, 2)
    out = linear_probe(x, y, q, qy, c_grid=(1e-3, 1e-2, 1.0), seed=3)
    fit = lambda c, a, b: make_pipeline(StandardScaler(), LogisticRegression(C=c, tol=1e-10, max_iter=10_000)).fit(a, b)  # noqa: E731
    x_fit, x_val, y_fit, y_val = train_test_split(x, y, test_size=0.2, stratify=y, random_state=3)
    scores = [fit(c, x_fit, y_fit).score(x_val, y_val) for c in (1e-3, 1e-2, 1.0)]
    best = (1e-3, 1e-2, 1.0)[int(np.argmax(scores))]
    assert out["C"] == best
    assert out["accuracy"] == pytest.approx(fit(best, x, y).score(q, qy), abs=2e-3)
    assert 0.3 < out["accuracy"] < 0.95  # a probe problem that is neither trivial nor hopeless


def test_the_linear_probe_does_not_depend_on_the_thread_count():
    import torch

    x, y = _overlapping(2000, 4)
    q, qy = _overlapping(500, 5)
    before = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append(linear_probe(x, y, q, qy, seed=0))
    finally:
        torch.set_num_threads(before)
    assert results[0]["accuracy"] == results[1]["accuracy"] and results[0]["C"] == results[1]["C"]


def test_the_linear_probe_is_unmoved_by_rounding_level_changes_of_its_features():
    """What another machine changes: the same weights give features equal to float32 rounding (different kernels,
    another summation order). A probe run to convergence gives the same C and the same accuracy; one stopped early
    (the 500-iteration cap of the scikit-learn grid it replaced) does not have to."""
    x, y = _overlapping(2000, 6)
    q, qy = _overlapping(1000, 7)
    rng = np.random.default_rng(0)
    base = linear_probe(x, y, q, qy, seed=0)
    for _ in range(3):
        jitter = lambda a: (a * (1 + 1e-6 * rng.standard_normal(a.shape))).astype(np.float32)  # noqa: E731
        moved = linear_probe(jitter(x), y, jitter(q), qy, seed=0)
        assert moved["C"] == base["C"] and moved["accuracy"] == base["accuracy"]
        assert moved["grad"] <= 1e-6


def test_parameter_retention_equals_one_fit_per_parameter():
    """The joint ridge fit (one decomposition, alpha per parameter) and the Newton logistic fit give what a
    separate fit per parameter gives: the same R^2 to rounding, the same held-out accuracy."""
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.metrics import r2_score
    from sklearn.model_selection import GroupShuffleSplit
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(3)
    n, k, dim = 200, 4, 12
    params = {"area": rng.uniform(0.1, 1, (n, k)), "hue": rng.uniform(-0.1, 0.1, (n, k)),
              "flip": rng.integers(0, 2, (n, k)).astype(float), "grayscale": rng.integers(0, 2, (n, k)).astype(float)}
    clean = rng.standard_normal((n, dim))
    code = np.stack([params["area"], 0.3 * params["hue"] / 0.1, params["flip"]], -1)
    views = clean[:, None, :] + code @ rng.standard_normal((3, dim)) + rng.standard_normal((n, k, dim))
    out = parameter_retention(clean, views, params, seed=5)
    diff = (views - clean[:, None, :]).reshape(n * k, -1)
    tr, te = next(GroupShuffleSplit(1, test_size=0.3, random_state=5).split(diff, groups=np.repeat(np.arange(n), k)))
    sc = StandardScaler().fit(diff[tr])
    a, b = sc.transform(diff[tr]), sc.transform(diff[te])
    for name in ("area", "hue"):
        y = params[name].reshape(-1)
        pred = RidgeCV(alphas=np.logspace(-2, 4, 7)).fit(a, y[tr]).predict(b)
        assert out[name] == pytest.approx(r2_score(y[te], pred), abs=1e-9)
    for name in ("flip", "grayscale"):
        y = params[name].reshape(-1)
        ref = LogisticRegression(tol=1e-10, max_iter=10_000).fit(a, y[tr]).score(b, y[te])
        assert out[name] == ref
    assert list(out) == list(params)
    assert 0.6 < out["flip"] and out["grayscale"] < 0.65 and out["area"] > 0.3
