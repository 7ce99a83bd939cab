"""Toy problems with exact answers for claim C7.

(a) Linear theory (Jing et al. 2022, "Understanding dimensional collapse in contrastive SSL", Thm 1):
    data x ~ N(0, diag(lam)) in R^n, each view adds independent noise N(0, s^2 diag(a)). For a linear map
    trained with InfoNCE, the weight decays along the eigen-directions of X = Sigma_data - Sigma_aug with
    negative eigenvalues. With uniform softmax weights both covariances enter as differences of two samples,
    2 lam_j and 2 s^2 a_j, so direction j is predicted to collapse iff s^2 a_j > lam_j.
(b) A non-linear toy with known geometry: x = Q [rho cos(theta), rho sin(theta), c], a circle (the pose
    theta) times a d_c-dimensional content subspace, embedded in R^n by a fixed orthonormal Q. The augmentation
    is the group action theta -> theta + delta, delta ~ U(-s pi, s pi): the data tangent plane and the
    augmentation direction are known exactly at every point.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sslgeo_lib.training.losses import info_nce_euclidean, nt_xent


# --- (a) linear theory ---------------------------------------------------------------------------

@dataclass(frozen=True)
class LinearProblem:
    """Data variances `lam` (n,) and augmentation-noise variances `a` (n,) per coordinate direction."""

    lam: np.ndarray
    a: np.ndarray

    @classmethod
    def default(cls, n: int = 16) -> "LinearProblem":
        """Data variances spread log-uniformly over [1e-3, 1], isotropic unit augmentation noise."""
        return cls(lam=np.logspace(0, -3, n), a=np.ones(n))

    def equilibrium_gains(self, strength: float) -> np.ndarray:
        """Predicted gains ||W e_j|| of the trained map (n,), from the closed-form minimiser above."""
        sa = strength ** 2 * self.a
        b = self.lam + sa
        y = (np.sqrt(1 + 8 * sa / b) - 1) / 2
        with np.errstate(divide="ignore"):
            return np.sqrt((1 / y - 1) / b)

    def sample(self, batch: int, strength: float, g: torch.Generator):
        """(x1, x2): two noisy views (batch, n) of the same Gaussian samples."""
        n = len(self.lam)
        x = torch.randn(batch, n, generator=g) * torch.tensor(self.lam, dtype=torch.float32).sqrt()
        noise = torch.tensor(self.a, dtype=torch.float32).sqrt() * strength
        return x + noise * torch.randn(batch, n, generator=g), x + noise * torch.randn(batch, n, generator=g)


def train_linear(problem: LinearProblem, strength: float, seed: int, depth: int = 1, steps: int = 800,
                 batch: int = 256, lr: float = 0.2, init_scale: float = 1.0) -> tuple[list, list]:
    """Train a product of `depth` square linear maps z = W_depth ... W_1 x with the Euclidean InfoNCE of
    Jing et al. on fresh samples every step. Returns (initial weights, trained weights), lists of (n, n)."""
    n = len(problem.lam)
    g = torch.Generator().manual_seed(seed)
    weights = [(torch.randn(n, n, generator=g) * init_scale / np.sqrt(n)).requires_grad_() for _ in range(depth)]
    initial = [w.detach().clone() for w in weights]
    opt = torch.optim.Adam(weights, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)  # decays to 0: no optimiser noise floor
    for _ in range(steps):
        x1, x2 = problem.sample(batch, strength, g)
        z1, z2 = x1, x2
        for w in weights:
            z1, z2 = z1 @ w.T, z2 @ w.T
        loss = info_nce_euclidean(z1, z2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return initial, [w.detach() for w in weights]


def column_gains(weights: list[torch.Tensor]) -> np.ndarray:
    """||M e_j|| for the product M = W_k ... W_1 and each data direction e_j: (n,)."""
    m = weights[0]
    for w in weights[1:]:
        m = w @ m
    return m.norm(dim=0).numpy().astype(np.float64)


COLLAPSE_THRESHOLD = 0.1  # a direction counts as collapsed when its gain is below 10% of the largest


def relative_gains(gains: np.ndarray) -> np.ndarray:
    return gains / gains.max()


def linear_theory_table(problem: LinearProblem, strengths, seeds, **train_kwargs):
    """Trained vs predicted gains for the one-layer map, and where collapse lands in a two-layer map.

    One row per (strength, seed, direction): lam, predicted and measured relative gain of the one-layer
    map (`pred`, `one_layer`), and of h = W1 x and z = W2 W1 x for the two-layer map (`two_layer_h`,
    `two_layer_z`).
    """
    import pandas as pd

    rows = []
    for s in strengths:
        pred = relative_gains(problem.equilibrium_gains(s))
        for seed in seeds:
            one = relative_gains(column_gains(train_linear(problem, s, seed, **train_kwargs)[1]))
            two = train_linear(problem, s, seed, depth=2, **train_kwargs)[1]
            h, z = relative_gains(column_gains(two[:1])), relative_gains(column_gains(two))
            rows += [{"strength": s, "seed": seed, "direction": j, "lam": problem.lam[j], "pred": pred[j],
                      "one_layer": one[j], "two_layer_h": h[j], "two_layer_z": z[j]} for j in range(len(pred))]
    return pd.DataFrame(rows)


# --- (b) the toy manifold with a known group action ----------------------------------------------

@dataclass(frozen=True)
class ToyManifold:
    """A circle of radius `radius` (pose) times a `content_dim`-dim Gaussian content subspace, in R^`ambient`."""

    ambient: int = 20
    content_dim: int = 3
    radius: float = 1.5
    embed_seed: int = 0

    @property
    def basis(self) -> np.ndarray:  # (ambient, 2 + content_dim), orthonormal
        rng = np.random.default_rng(self.embed_seed)
        return np.linalg.qr(rng.standard_normal((self.ambient, 2 + self.content_dim)))[0]

    @property
    def dim(self) -> int:
        """Intrinsic dimension of the data manifold: 1 (pose) + content_dim."""
        return 1 + self.content_dim

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(theta (n,), content (n, content_dim))."""
        return rng.uniform(0, 2 * np.pi, n), rng.standard_normal((n, self.content_dim))

    def embed(self, theta: np.ndarray, content: np.ndarray) -> np.ndarray:
        coords = np.column_stack([self.radius * np.cos(theta), self.radius * np.sin(theta), content])
        return coords @ self.basis.T  # (n, ambient)

    def augment(self, theta: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
        """The group action: rotate the pose by delta ~ U(-strength pi, strength pi)."""
        return theta + rng.uniform(-strength * np.pi, strength * np.pi, len(theta))

    def augmentation_direction(self, theta: np.ndarray) -> np.ndarray:
        """Unit tangent of the group orbit at each point: (n, ambient)."""
        return np.column_stack([-np.sin(theta), np.cos(theta)]) @ self.basis[:, :2].T

    def tangent_plane(self, theta: np.ndarray) -> np.ndarray:
        """Orthonormal basis of the data manifold's tangent plane at each point: (n, ambient, dim)."""
        content = np.broadcast_to(self.basis[:, 2:], (len(theta), self.ambient, self.content_dim))
        return np.concatenate([self.augmentation_direction(theta)[:, :, None], content], axis=2)


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers of the given sizes with BatchNorm + ReLU between them (none after the last)."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers += [nn.BatchNorm1d(b), nn.ReLU()]
    return nn.Sequential(*layers)


def train_toy(toy: ToyManifold, strength: float, seed: int, width: int = 64, out_dim: int = 16,
              steps: int = 600, batch: int = 256, lr: float = 0.05, temperature: float = 0.5):
    """Train encoder f: R^ambient -> R^width (2-layer MLP) and projector g: R^width -> R^out_dim (SimCLR MLP)
    with NT-Xent on pairs of group-action views. Returns (encoder, projector), both in eval mode."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    encoder, projector = mlp([toy.ambient, width, width]), mlp([width, width, out_dim])
    params = list(encoder.parameters()) + list(projector.parameters())
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=5e-4)
    for _ in range(steps):
        theta, content = toy.sample(batch, rng)
        views = [toy.embed(toy.augment(theta, strength, rng), content) for _ in range(2)]
        z = projector(encoder(torch.tensor(np.concatenate(views), dtype=torch.float32)))
        loss = nt_xent(z[:batch], z[batch:], temperature)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return encoder.eval(), projector.eval()


def push_forward(encoder: nn.Module, x: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Map tangent vectors through the encoder: J_f(x_i) @ directions_i, for x (N, n) and directions
    (N, n, k): (N, D, k). Exact (autodiff), no estimation."""
    from torch.func import jacrev, vmap

    single = lambda v: encoder(v[None])[0]  # noqa: E731
    jac = vmap(jacrev(single))(torch.tensor(x, dtype=torch.float32)).detach().numpy()  # (N, D, n)
    return np.einsum("ndk,nkj->ndj", jac.astype(np.float64), directions)


def toy_geometry(toy: ToyManifold, encoder: nn.Module, projector: nn.Module, strength: float, seed: int = 0,
                 n_anchor: int = 200, n_bank: int = 4000, n_views: int = 8, k: int = 40) -> dict[str, float]:
    """C2-C4 on the toy, with exact tangent planes and augmentation directions.

    Returns the invariance of h and z under the group action (at `strength`), effective ranks of h and z,
    the projector-Jacobian effective rank, the alignment of the projector's kept subspace with the exact
    tangent plane (`alpha_exact`), with a kNN local-PCA estimate of it (`alpha_estimated`), the alignment
    between estimated and exact tangent planes (`tangent_recovery`), the random-subspace baseline, and the
    suppression of the exact augmentation direction (`rho_exact`).
    """
    from sslgeo_lib import geometry as G

    rng = np.random.default_rng(10_000 + seed)
    theta, content = toy.sample(n_anchor, rng)
    x = toy.embed(theta, content)
    with torch.no_grad():
        h = encoder(torch.tensor(x, dtype=torch.float32)).numpy()
        views_x = np.stack([toy.embed(toy.augment(theta, strength, rng), content) for _ in range(n_views)], 1)
        flat = torch.tensor(views_x.reshape(-1, toy.ambient), dtype=torch.float32)
        vh = encoder(flat)
        vz = projector(vh)
        bank = encoder(torch.tensor(toy.embed(*toy.sample(n_bank, rng)), dtype=torch.float32)).numpy()
    vh, vz = vh.numpy().reshape(n_anchor, n_views, -1), vz.numpy().reshape(n_anchor, n_views, -1)
    jac = G.jacobians(projector, h)  # (A, m, D)
    ranks = G.jacobian_effective_rank(jac)
    tangent = push_forward(encoder, x, toy.tangent_plane(theta))  # (A, D, dim)
    aug = push_forward(encoder, x, toy.augmentation_direction(theta)[:, :, None])  # (A, D, 1)
    nbrs = G.neighbours(h, bank, k)
    out = {"alpha_exact": [], "alpha_estimated": [], "tangent_recovery": [], "rho_exact": [], "baseline": []}
    for i in range(n_anchor):
        r = max(1, int(round(ranks[i])))
        kept = G.kept_subspace(jac[i], r)
        t_exact = np.linalg.qr(tangent[i])[0]
        t_est = G.local_pca(bank[nbrs[i]], toy.dim)
        out["alpha_exact"].append(G.alignment(t_exact, kept))
        out["alpha_estimated"].append(G.alignment(t_est, kept))
        out["tangent_recovery"].append(G.alignment(t_est, t_exact))
        out["rho_exact"].append(G.suppression(jac[i], np.linalg.qr(aug[i])[0]))
        out["baseline"].append(max(r, toy.dim) / h.shape[1])
    summary = {key: float(np.mean(v)) for key, v in out.items()}
    with torch.no_grad():
        z = projector(torch.tensor(h)).numpy()
    return {**summary, "invariance_h": G.invariance(vh)["invariance"], "invariance_z": G.invariance(vz)["invariance"],
            "erank_h": G.effective_rank(h), "erank_z": G.effective_rank(z), "jacobian_rank": float(ranks.mean())}


def toy_table(toy: ToyManifold, strengths, seeds, **train_kwargs):
    """`toy_geometry` for a model trained at each (strength, seed): one row each."""
    import pandas as pd

    rows = []
    for s in strengths:
        for seed in seeds:
            encoder, projector = train_toy(toy, s, seed, **train_kwargs)
            rows.append({"strength": s, "seed": seed, **toy_geometry(toy, encoder, projector, s, seed)})
    return pd.DataFrame(rows)


def theory_verdicts(linear: "pd.DataFrame", toy: "pd.DataFrame") -> dict:
    """C7: primary = how much better the closed-form prediction fits the trained one-layer spectrum than
    the no-collapse alternative (all relative gains 1): mean |log10 error| of the latter minus the former,
    per seed over every strength and direction (> 0 predicted). Also, on the toy, the suppression of the
    exact augmentation direction (rho < 1 at every s > 0) and the excess of the exact-tangent alignment
    over the random baseline (> 0 at every s > 0)."""
    from sslgeo_lib import stats

    err = linear.assign(theory=np.abs(np.log10(linear["one_layer"]) - np.log10(linear["pred"])),
                        flat=np.abs(np.log10(linear["one_layer"])))
    per_seed = err.groupby("seed")[["theory", "flat"]].mean()
    gain = per_seed["flat"] - per_seed["theory"]
    m, lo, hi = stats.mean_ci(gain)
    primary = stats.ClaimResult("C7", "error of no-collapse minus error of theory (dex)", m, lo, hi,
                                stats.verdict_from_cis([lo], [hi], +1), len(gain))
    toy = toy.assign(alpha_excess=toy["alpha_exact"] - toy["baseline"])
    return {"primary": primary,
            "toy_rho": stats.per_strength_claim("C7", "toy: rho of the exact augmentation direction, below 1",
                                                toy, "rho_exact", -1, null=1.0),
            "toy_alpha": stats.per_strength_claim("C7", "toy: alpha(exact tangent) - random baseline", toy,
                                                  "alpha_excess", +1)}
