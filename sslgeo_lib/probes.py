"""Probes on frozen features: linear probe, cosine kNN, and augmentation-parameter regression (claim C5)."""
from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.metrics import r2_score
from sklearn.model_selection import GroupShuffleSplit, train_test_split
from sklearn.preprocessing import StandardScaler

from sslgeo_lib.training.augment import BINARY_PARAMS

PROBE_C_GRID = (1e-2, 1e-1, 1.0)  # inverse L2 strengths tried on the validation split
KNN_K = 20


def knn_accuracy(bank: np.ndarray, bank_y: np.ndarray, query: np.ndarray, query_y: np.ndarray,
                 k: int = KNN_K) -> float:
    """Cosine kNN accuracy: each query takes the class with the largest summed cosine similarity among
    its k nearest bank points (Wu et al. 2018 use the same vote with exp weights). Range [0, 1];
    chance is 1 / n_classes."""
    b = torch.nn.functional.normalize(torch.as_tensor(bank, dtype=torch.float32), dim=1)
    q = torch.nn.functional.normalize(torch.as_tensor(query, dtype=torch.float32), dim=1)
    sim, idx = (q @ b.T).topk(min(k, len(b)), dim=1)  # (Q, k)
    labels = torch.as_tensor(bank_y)[idx]
    votes = torch.zeros(len(q), int(max(bank_y.max(), query_y.max())) + 1).scatter_add_(1, labels, sim)
    return float((votes.argmax(1).numpy() == query_y).mean())


# The linear probe's optimiser: full-batch L-BFGS in float64, run to a gradient small enough that the fitted
# probe (and so its accuracies and its chosen C) no longer depends on floating-point details of the machine.
PROBE_GRAD_TOL = 1e-6   # max |gradient| of the mean objective at which the fit has converged (1e-7 took 2.3x as
                        # long on the cpu preset's features and gave the same accuracies and chosen C)
PROBE_MAX_ITER = 2000   # L-BFGS iterations per fit (a cap; fits of the cpu preset converge in about 100-300)


def softmax_regression(x: np.ndarray, y: np.ndarray, n_classes: int, c: float, init=None):
    """Multinomial logistic regression minimising mean cross-entropy + |W|^2 / (2 C N) (bias unpenalised):
    scikit-learn's LogisticRegression(C) objective divided by C N, so the optimum is the same. Full-batch
    L-BFGS with a strong-Wolfe line search in float64. Returns (W (D, K), b (K,), max |gradient| at the end)."""
    xt, yt = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y, dtype=torch.long)
    w = torch.zeros(x.shape[1], n_classes, dtype=torch.float64) if init is None else init[0].clone()
    b = torch.zeros(n_classes, dtype=torch.float64) if init is None else init[1].clone()
    w.requires_grad_(True)
    b.requires_grad_(True)
    penalty = 1.0 / (2.0 * c * len(x))
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=PROBE_MAX_ITER, tolerance_grad=PROBE_GRAD_TOL,
                            tolerance_change=0, history_size=20, line_search_fn="strong_wolfe")

    def objective():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ w + b, yt) + penalty * (w * w).sum()
        loss.backward()
        return loss

    opt.step(objective)
    objective()
    grad = max(float(w.grad.abs().max()), float(b.grad.abs().max()))
    return w.detach(), b.detach(), grad


def _standardise(fit: np.ndarray, *others: np.ndarray):
    mean, std = fit.mean(0), fit.std(0)
    std = np.where(std > 0, std, 1.0)
    return [(a - mean) / std for a in (fit, *others)]


def _accuracy(w, b, x: np.ndarray, y: np.ndarray) -> float:
    pred = (torch.as_tensor(x, dtype=torch.float64) @ w + b).argmax(1).numpy()
    return float((pred == y).mean())


def linear_probe(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                 c_grid=PROBE_C_GRID, val_fraction: float = 0.2, seed: int = 0) -> dict:
    """Multinomial logistic regression on standardised features, C picked on a stratified validation split
    of the training set (the first C with the best validation accuracy), refit on all of it.
    Returns {"accuracy": test accuracy, "C": chosen C, "grad": the largest final gradient of any fit}.
    Range [0, 1]; chance is 1 / n_classes. Fits are warm-started along the grid (largest penalty first). A grid of
    one C has nothing to pick: the probe is that C's fit on all of the training set."""
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    fits, grads, best = {c: None for c in c_grid}, [], c_grid[0]
    if len(c_grid) > 1:
        x_fit, x_val, y_fit, y_val = train_test_split(x_train, y_train, test_size=val_fraction,
                                                      stratify=y_train, random_state=seed)
        a_fit, a_val = _standardise(x_fit, x_val)
        scores, init = {}, None
        for c in sorted(c_grid):
            w, b, g = softmax_regression(a_fit, y_fit, n_classes, c, init)
            scores[c], fits[c], init = _accuracy(w, b, a_val, y_val), (w, b), (w, b)
            grads.append(g)
        best = max(c_grid, key=lambda c: (scores[c], -list(c_grid).index(c)))
    a_train, a_test = _standardise(x_train, x_test)
    w, b, g = softmax_regression(a_train, y_train, n_classes, best, fits[best])  # warm start: same optimum
    return {"accuracy": _accuracy(w, b, a_test, y_test), "C": best, "grad": max(grads + [g])}


RETENTION_ALPHAS = np.logspace(-2, 4, 7)  # ridge penalties tried (generalised cross-validation, per parameter)


def parameter_retention(clean: np.ndarray, views: np.ndarray, params: dict[str, np.ndarray],
                        test_fraction: float = 0.3, seed: int = 0) -> dict[str, float]:
    """How well each augmentation parameter can be read from r(t(x)) - r(x) (claim C5).

    clean (N, dim), views (N, K, dim), params {name: (N, K)}. Images are split into train/test groups
    (no image on both sides). Continuous parameters: ridge regression, alpha chosen per parameter by
    leave-one-out (generalised) cross-validation, all parameters fitted from one decomposition; held-out R^2
    (1 = fully recoverable, 0 = no better than the mean; can be negative). Binary parameters (BINARY_PARAMS):
    L2 logistic regression (C = 1) solved by Newton's method to its optimum, held-out accuracy (chance =
    majority rate). Parameters constant over the sample (e.g. everything at strength 0) give NaN.
    """
    n, k, _ = views.shape
    diff = (views - clean[:, None, :]).reshape(n * k, -1)
    groups = np.repeat(np.arange(n), k)
    tr, te = next(GroupShuffleSplit(1, test_size=test_fraction, random_state=seed).split(diff, groups=groups))
    scaler = StandardScaler().fit(diff[tr])
    a, b = scaler.transform(diff[tr]), scaler.transform(diff[te])
    values = {name: value.reshape(-1) for name, value in params.items()}
    varying = {name for name, y in values.items() if np.ptp(y[tr]) > 0 and np.ptp(y[te]) > 0}
    out = {name: float("nan") for name in values if name not in varying}
    for name in sorted(varying & set(BINARY_PARAMS)):
        fit = LogisticRegression(solver="newton-cholesky", max_iter=100).fit(a, values[name][tr])
        out[name] = float(fit.score(b, values[name][te]))
    continuous = [name for name in values if name in varying and name not in BINARY_PARAMS]
    if continuous:
        y = np.stack([values[name] for name in continuous], 1)
        pred = RidgeCV(alphas=RETENTION_ALPHAS, alpha_per_target=True).fit(a, y[tr]).predict(b)
        out |= {name: float(r2_score(y[te][:, j], pred[:, j])) for j, name in enumerate(continuous)}
    return {name: out[name] for name in values}
