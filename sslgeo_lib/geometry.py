"""Geometry of feature spaces: invariance (C2), dimension (C3), tangent planes and the projector's
kept subspace (C4: v2's locality gap and data-matched suppression, v1's alignment and suppression against
random directions). Pure functions of arrays, float64 inside; shapes in each docstring.
Intrinsic dimension comes from scikit-dimension (Bac et al. 2021), not re-implemented here.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch.func import jacrev, vmap

ID_ESTIMATORS = ("TwoNN", "MLE", "lPCA")


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


# --- invariance (C2) ---------------------------------------------------------------------------

def invariance(views: np.ndarray) -> dict[str, float]:
    """Augmentation invariance of L2-normalised features, unbiased for the number of views (CLAIMS.md, C2).

    views: (N, K, d), K >= 2 views of each of N images. With r the unit-normalised features,
    V_aug = mean_i mean_k ||r_ik - mean_k r_ik||^2 (within-image), V_tot = mean_ik ||r_ik - mean_ik r||^2,
    I = 1 - (K / (K - 1)) V_aug / V_tot. The factor K / (K - 1) removes the 1/K bias of the plain ratio (a
    mean of K views is itself 1/K as noisy), so that views independent of the image give I about 0
    (exactly -1/(NK - 1) in expectation), whatever K. Range [-1/(K - 1), 1]: 1 = all views of an image
    map to the same point; about 0 = views vary as much as different images do (e.g. pure noise).
    Returns {"invariance": I, "v_aug": V_aug, "v_tot": V_tot}.
    """
    r = _unit(views)
    k = r.shape[1]
    if k < 2:
        raise ValueError(f"invariance needs at least 2 views per image, got {k}")
    v_aug = ((r - r.mean(1, keepdims=True)) ** 2).sum(-1).mean()
    v_tot = ((r - r.reshape(-1, r.shape[-1]).mean(0)) ** 2).sum(-1).mean()
    return {"invariance": float(1 - k / (k - 1) * v_aug / v_tot), "v_aug": float(v_aug), "v_tot": float(v_tot)}


def view_cosine(views: np.ndarray) -> float:
    """Mean cosine similarity between two different views of the same image; views (N, K, d), K >= 2.
    Range [-1, 1]; 1 = identical directions."""
    r = _unit(views)
    k = r.shape[1]
    gram = np.einsum("nkd,nld->nkl", r, r)  # (N, K, K)
    return float((gram.sum((1, 2)) - np.trace(gram, axis1=1, axis2=2)).mean() / (k * (k - 1)))


# --- dimension (C3) ----------------------------------------------------------------------------

def singular_values(x: np.ndarray) -> np.ndarray:
    """Singular values (descending) of the centred feature matrix x (n, d)."""
    x = np.asarray(x, dtype=np.float64)
    return np.linalg.svd(x - x.mean(0), compute_uv=False)


def effective_rank(x: np.ndarray) -> float:
    """RankMe effective rank (Roy & Vetterli 2007; Garrido et al. 2023): exp of the entropy of the
    normalised singular values of the centred x (n, d). Range [1, min(n, d)]; k for a matrix with k
    equal non-zero singular values (e.g. isotropic data in a k-dim subspace)."""
    s = singular_values(x)
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def participation_ratio(x: np.ndarray) -> float:
    """(sum lambda)^2 / sum lambda^2 over covariance eigenvalues lambda of x (n, d).
    Range [1, d]; k for isotropic data in a k-dim subspace."""
    lam = singular_values(x) ** 2
    return float(lam.sum() ** 2 / (lam ** 2).sum())


def pca_dimension(x: np.ndarray, level: float) -> int:
    """Number of principal components that explain a fraction `level` of the variance of x (n, d)."""
    lam = singular_values(x) ** 2
    return int(np.searchsorted(np.cumsum(lam) / lam.sum(), level - 1e-12) + 1)


def intrinsic_dimension(x: np.ndarray, n: int, estimator: str, seed: int = 0) -> float:
    """Global intrinsic dimension of `n` points drawn from x (n_all, d) by `seed`, with scikit-dimension's
    TwoNN (Facco et al. 2017), MLE (Levina & Bickel 2005) or lPCA (Fukunaga-Olsen). Compare two
    feature spaces only at the same n: these estimators are biased by the sample size."""
    import skdim

    if estimator not in ID_ESTIMATORS:
        raise ValueError(f"unknown ID estimator {estimator!r}; accepted: {', '.join(ID_ESTIMATORS)}")
    if n > len(x):
        raise ValueError(f"asked for n={n} points, only {len(x)} available")
    pts = np.asarray(x, dtype=np.float64)[np.random.default_rng(seed).choice(len(x), n, replace=False)]
    return float(getattr(skdim.id, estimator)().fit(pts).dimension_)


# --- the projector's Jacobian and its kept subspace (C3, C4) -----------------------------------

def jacobians(projector: torch.nn.Module | None, h: np.ndarray, chunk: int = 256) -> np.ndarray:
    """J(h_i) = dg/dh at each row of h (N, D), fp32, projector in eval mode: (N, m, D). No projector (depth 0:
    z = h) gives the identity, (N, D, D)."""

    if projector is None:
        return np.broadcast_to(np.eye(h.shape[1], dtype=np.float32), (len(h), h.shape[1], h.shape[1])).copy()
    projector.eval()
    device = next(projector.parameters()).device
    single = lambda v: projector(v[None])[0]  # noqa: E731  BatchNorm1d wants a batch axis
    out = [vmap(jacrev(single))(torch.as_tensor(h[i:i + chunk], dtype=torch.float32, device=device))
           for i in range(0, len(h), chunk)]
    return torch.cat(out).detach().cpu().numpy()


def jacobian_effective_rank(jac: np.ndarray) -> np.ndarray:
    """Effective rank (see `effective_rank`, uncentred) of each Jacobian in jac (N, m, D): (N,)."""
    return effective_rank_of_spectrum(np.linalg.svd(np.asarray(jac, dtype=np.float64), compute_uv=False))


def effective_rank_of_spectrum(s: np.ndarray) -> np.ndarray:
    """exp(entropy of s / sum(s)) of each row of singular values s (N, k): (N,)."""
    p = s / s.sum(1, keepdims=True)
    return np.exp(-(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0)).sum(1))


def normalized_jacobians(jac: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Jacobians of z / ||z|| (what NT-Xent sees) from those of z: (I - u u^T) J / ||z||, u = z / ||z||.
    jac (N, m, D), z (N, m): (N, m, D)."""
    z = np.asarray(z, dtype=np.float64)
    norm = np.linalg.norm(z, axis=1, keepdims=True)
    u = z / norm
    jac = np.asarray(jac, dtype=np.float64)
    return (jac - u[:, :, None] * np.einsum("nm,nmd->nd", u, jac)[:, None, :]) / norm[:, :, None]


def kept_subspace(jac: np.ndarray, r: int) -> np.ndarray:
    """Top-r right singular vectors of one Jacobian (m, D): orthonormal basis (D, r)."""
    return np.linalg.svd(np.asarray(jac, dtype=np.float64))[2][:r].T


# --- tangent planes and alignment (C4) ---------------------------------------------------------

def neighbours(anchors: np.ndarray, bank: np.ndarray, k: int) -> np.ndarray:
    """Indices (A, k) of the k nearest bank rows (Euclidean) of each anchor, the anchor itself excluded
    when it is in the bank (zero distance)."""
    a = torch.as_tensor(anchors, dtype=torch.float64)
    b = torch.as_tensor(bank, dtype=torch.float64)
    dist = torch.cdist(a, b)
    dist[dist < 1e-9] = float("inf")
    return dist.topk(k, largest=False).indices.numpy()


def local_pca(points: np.ndarray, d: int) -> np.ndarray:
    """Top-d principal directions of points (k, D) around their mean: orthonormal basis (D, d).
    Also batched: points (A, k, D) gives (A, D, d)."""
    p = np.asarray(points, dtype=np.float64)
    vt = np.linalg.svd(p - p.mean(-2, keepdims=True), full_matrices=False)[2]  # (..., min(k, D), D)
    return np.swapaxes(vt[..., :d, :], -1, -2)


def tangent_planes(anchors: np.ndarray, bank: np.ndarray, k: int, d: int) -> np.ndarray:
    """kNN local-PCA tangent planes, vectorised: the top-d principal directions of the k nearest bank
    rows of each anchor (see `neighbours`, `local_pca`). anchors (A, D), bank (n, D): bases (A, D, d)."""
    return local_pca(np.asarray(bank, dtype=np.float64)[neighbours(anchors, bank, k)], d)


def local_dimension(points: np.ndarray) -> int:
    """Intrinsic dimension of one neighbourhood (k, D) by scikit-dimension's lPCA (Fukunaga-Olsen: the
    number of covariance eigenvalues above 5% of the largest), at least 1."""
    import skdim

    return max(1, int(round(skdim.id.lPCA().fit(np.asarray(points, dtype=np.float64)).dimension_)))


def alignment(q1: np.ndarray, q2: np.ndarray) -> float:
    """||Q1^T Q2||_F^2 / min(r, d) for orthonormal bases Q1 (D, r), Q2 (D, d): the mean squared cosine of
    the principal angles. Range [0, 1]: 1 when one subspace contains the other; max(r, d) / D expected
    for a uniformly random subspace."""
    return float(((q1.T @ q2) ** 2).sum() / min(q1.shape[1], q2.shape[1]))


def random_subspace(dim: int, r: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random r-dim subspace of R^dim (Haar): orthonormal basis (dim, r)."""
    return np.linalg.qr(rng.standard_normal((dim, r)))[0]


def locality_gap(kept, tangents, rng: np.random.Generator | None = None, partners=None) -> np.ndarray:
    """C4 v2 primary: alpha(A_i, T_i) - alpha(A_i, T_j(i)) for each anchor i, j a random derangement of the
    anchors drawn from `rng` (every anchor compared with exactly one other, each used once as the foil), or
    j = partners[i] when given (e.g. `same_class_partners`; a negative partner gives NaN for that anchor).

    kept: A kept subspaces, orthonormal bases (D, r_i) (a list, or an array (A, D, r)); tangents: the local
    tangent planes at the same anchors, bases (D, d) (list or (A, D, d)), every T from the same estimator,
    so estimator noise and directions common to all anchors cancel. Returns (A,) in [-1, 1].
    Reference values: > 0 when A_i follows the tangent plane at its own point; up to
    alpha(T_i, T_i) - E_j alpha(T_i, T_j) = 1 - E_j alpha(T_i, T_j) for A_i = T_i (1/(d + 1) on the round
    d-sphere); for a kept subspace that does not depend on the point the mean over anchors is exactly 0
    (j is a permutation of i).
    """
    n = len(kept)
    if n < 2 or len(tangents) != n:
        raise ValueError(f"need >= 2 anchors and one tangent plane each, got {n} and {len(tangents)}")
    if partners is not None:
        j = np.asarray(partners)
        return np.array([alignment(kept[i], tangents[i]) - alignment(kept[i], tangents[j[i]]) if j[i] >= 0
                         else np.nan for i in range(n)])
    j = rng.permutation(n)
    while np.any(j == np.arange(n)):  # rejection: about e draws on average
        j = rng.permutation(n)
    return np.array([alignment(kept[i], tangents[i]) - alignment(kept[i], tangents[j[i]]) for i in range(n)])


def same_class_partners(anchors: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """For each anchor (A, D), the index of the nearest other anchor (Euclidean) of the same label: C4's second
    locality foil (v3), which tells "the tangent plane at this point" from "this class's subspace"; -1 for an
    anchor alone in its class."""
    a = np.asarray(anchors, np.float64)
    dist = ((a[:, None, :] - a[None, :, :]) ** 2).sum(-1)
    labels = np.asarray(labels)
    dist[labels[:, None] != labels[None, :]] = np.inf
    np.fill_diagonal(dist, np.inf)
    j = dist.argmin(1)
    return np.where(np.isfinite(dist[np.arange(len(a)), j]), j, -1)


def suppression_vs_data(jac: np.ndarray, aug: np.ndarray, tangent: np.ndarray) -> float | np.ndarray:
    """C4 v2 mechanism: data-matched suppression of the augmentation directions,
    rho = mean_{u in U} ||J u||^2 / mean_{v in T} ||J v||^2 = (||J Q_U||_F^2 / u) / (||J Q_T||_F^2 / d).

    jac: Jacobian (m, D); aug: orthonormal basis Q_U (D, u) of the augmentation directions; tangent:
    orthonormal basis Q_T (D, d) of the data tangent plane at the same point. Batched too: (N, m, D),
    (N, D, u), (N, D, d) give (N,). Range [0, inf): 1 = the augmentation directions pass like the data
    directions at that point; 0 = killed (J Q_U = 0); > 1 = amplified relative to the data.
    """
    jac = np.asarray(jac, dtype=np.float64)
    num = ((jac @ np.asarray(aug, dtype=np.float64)) ** 2).sum((-2, -1)) / np.shape(aug)[-1]
    den = ((jac @ np.asarray(tangent, dtype=np.float64)) ** 2).sum((-2, -1)) / np.shape(tangent)[-1]
    out = num / den
    return float(out) if np.ndim(out) == 0 else out


def suppression(jac: np.ndarray, u: np.ndarray) -> float:
    """C4 v1 (secondary): rho = ||J Q_U||_F^2 / (||J||_F^2 dim(U) / D), the gain of U against a uniformly
    random direction of R^D, for one Jacobian J (m, D) and orthonormal basis Q_U (D, u).
    Range [0, D / u]: 1 = the projector treats U like a random direction; 0 = it kills U; > 1 = amplifies it.
    Caveat: a trained projector has almost no gain off the data, so any data direction (augmentation or
    not) scores far above 1 against random directions; `suppression_vs_data` is the fair comparison."""
    jac = np.asarray(jac, dtype=np.float64)
    return float(((jac @ u) ** 2).sum() / ((jac ** 2).sum() * u.shape[1] / jac.shape[1]))


def augmentation_directions(views: np.ndarray, u: int) -> np.ndarray:
    """Top-u principal directions of the encoder features of one image's views (K, D): basis (D, u)."""
    return local_pca(views, u)


def id_calibration(n: int, dims=(2, 5, 10, 20), ambient: int = 64, seeds=(0, 1, 2)):
    """Intrinsic-dimension estimates on manifolds of known dimension d, at `n` points: scikit-dimension's
    uniform d-ball and d-sphere, isometrically embedded in R^ambient by a random rotation.
    One row per (manifold, d, seed, estimator): columns manifold, d, seed, estimator, estimate."""
    import skdim

    rows = []
    for d in dims:
        for seed in seeds:
            rng = np.random.default_rng(seed)
            for name, pts in (("ball", skdim.datasets.hyperBall(n, d, random_state=seed)),
                              ("sphere", skdim.datasets.hyperSphere(n, d, random_state=seed))):
                rot = random_subspace(ambient, pts.shape[1], rng)  # (ambient, k), orthonormal columns
                x = pts @ rot.T
                rows += [{"manifold": name, "d": d, "seed": seed, "estimator": e,
                          "estimate": intrinsic_dimension(x, n, e, seed)} for e in ID_ESTIMATORS]
    return pd.DataFrame(rows)
