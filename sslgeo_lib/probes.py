"""Probes on frozen features: linear probe, cosine kNN, and augmentation-parameter regression (claim C5)."""
from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.metrics import r2_score
from sklearn.model_selection import GroupShuffleSplit, train_test_split
from sklearn.pipeline import make_pipeline
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


def _logistic(c: float, seed: int):
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=500, random_state=seed))


def linear_probe(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                 c_grid=PROBE_C_GRID, val_fraction: float = 0.2, seed: int = 0) -> dict:
    """Multinomial logistic regression on standardised features, C picked on a stratified validation split
    of the training set, refit on all of it. Returns {"accuracy": test accuracy, "C": chosen C}.
    Range [0, 1]; chance is 1 / n_classes."""
    x_fit, x_val, y_fit, y_val = train_test_split(x_train, y_train, test_size=val_fraction,
                                                  stratify=y_train, random_state=seed)
    scores = [_logistic(c, seed).fit(x_fit, y_fit).score(x_val, y_val) for c in c_grid]
    best = c_grid[int(np.argmax(scores))]
    model = _logistic(best, seed).fit(x_train, y_train)
    return {"accuracy": float(model.score(x_test, y_test)), "C": best}


def parameter_retention(clean: np.ndarray, views: np.ndarray, params: dict[str, np.ndarray],
                        test_fraction: float = 0.3, seed: int = 0) -> dict[str, float]:
    """How well each augmentation parameter can be read from r(t(x)) - r(x) (claim C5).

    clean (N, dim), views (N, K, dim), params {name: (N, K)}. Images are split into train/test groups
    (no image on both sides). Continuous parameters: ridge regression (alpha by CV), held-out R^2
    (1 = fully recoverable, 0 = no better than the mean; can be negative). Binary parameters
    (BINARY_PARAMS): logistic regression, held-out accuracy (chance = majority rate).
    Parameters constant over the sample (e.g. everything at strength 0) give NaN.
    """
    n, k, _ = views.shape
    diff = (views - clean[:, None, :]).reshape(n * k, -1)
    groups = np.repeat(np.arange(n), k)
    tr, te = next(GroupShuffleSplit(1, test_size=test_fraction, random_state=seed).split(diff, groups=groups))
    scaler = StandardScaler().fit(diff[tr])
    a, b = scaler.transform(diff[tr]), scaler.transform(diff[te])
    out = {}
    for name, value in params.items():
        y = value.reshape(-1)
        if np.ptp(y[tr]) == 0 or np.ptp(y[te]) == 0:
            out[name] = float("nan")
        elif name in BINARY_PARAMS:
            out[name] = float(LogisticRegression(max_iter=500).fit(a, y[tr]).score(b, y[te]))
        else:
            pred = RidgeCV(alphas=np.logspace(-2, 4, 7)).fit(a, y[tr]).predict(b)
            out[name] = float(r2_score(y[te], pred))
    return out
