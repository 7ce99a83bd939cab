"""Toy problems with exact answers for claim C7.

(a) Linear theory (Jing et al. 2022, "Understanding dimensional collapse in contrastive SSL", Thm 1):
    data x ~ N(0, diag(lam)) in R^n, each view adds independent noise N(0, s^2 diag(a)). For a linear map
    trained with InfoNCE, the weight decays along the eigen-directions of X = Sigma_data - Sigma_aug with
    negative eigenvalues. With uniform softmax weights both covariances enter as differences of two samples,
    2 lam_j and 2 s^2 a_j, so direction j is predicted to collapse iff s^2 a_j > lam_j. The foil is a
    data-only alternative (gains set by the data spectrum alone, ignoring augmentation), besides "no collapse".
(b) A non-linear toy with known geometry: x = Q [rho cos(theta), rho sin(theta), c], a circle (the pose
    theta) times a d_c-dimensional content subspace, embedded in R^n by a fixed orthonormal Q. The augmentation
    is the group action theta -> theta + delta, delta ~ U(-s pi, s pi): the data tangent plane and the
    augmentation direction are known exactly at every point.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.func import jacrev, vmap

from sslgeo_lib import geometry as G
from sslgeo_lib import stats
from sslgeo_lib.data import cache_dir
from sslgeo_lib.store import cached_result
from sslgeo_lib.training.losses import info_nce_euclidean, nt_xent

THEORY_CODE = ("synthetic.py", "training/losses.py", "geometry.py")  # what C7's tables are computed by


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
        """Predicted gains ||W e_j|| of the trained map (n,), from the closed-form minimiser above
        (Jing et al. 2022's setting; our large-batch derivation): with b = lam + s^2 a and
        y = (sqrt(1 + 8 s^2 a / b) - 1) / 2, ||W e_j||^2 = (1/y - 1) / b. Flat where lam_j >> s^2 a_j,
        falling like sqrt(lam_j) / (s^2 a_j) where the augmentation outweighs the data."""
        sa = strength ** 2 * self.a
        b = self.lam + sa
        y = (np.sqrt(1 + 8 * sa / b) - 1) / 2
        with np.errstate(divide="ignore"):
            return np.sqrt((1 / y - 1) / b)

    def data_only_gains(self) -> np.ndarray:
        """The data-only alternative (n,): gains set by the data spectrum alone, ||W e_j|| = sqrt(lam_j),
        whatever the augmentation (a and s play no part). Each direction is passed in proportion to its data
        standard deviation, so weak data directions collapse by their variance alone. It is the closed
        form's own limit where augmentation outweighs the data everywhere (s -> inf with isotropic a,
        relative gains sqrt(lam_j / lam_1)): the theory's collapse shape without the augmentation-set
        threshold s^2 a_j = lam_j. Parameter-free, like the theory and the "no collapse" foil (all 1)."""
        return np.sqrt(self.lam)

    def sample(self, batch: int, strength: float, g: torch.Generator):
        """(x1, x2): two noisy views (batch, n) of the same Gaussian samples."""
        n = len(self.lam)
        x = torch.randn(batch, n, generator=g) * torch.tensor(self.lam, dtype=torch.float32).sqrt()
        noise = torch.tensor(self.a, dtype=torch.float32).sqrt() * strength
        return x + noise * torch.randn(batch, n, generator=g), x + noise * torch.randn(batch, n, generator=g)


@dataclass(frozen=True)
class LinearFit:
    """A trained product of linear maps: weights before and after training (lists of (n, n)), and the norm
    of the full gradient of the loss at the end and at the start (see `linear_grad_norm`)."""

    initial: list
    trained: list
    grad_norm: float
    grad_norm_init: float


def _product(weights: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    for w in weights:
        x = x @ w.T
    return x


def linear_grad_norm(problem: LinearProblem, strength: float, weights: list[torch.Tensor], seed: int,
                     batch: int = 256, n_batches: int = 64) -> float:
    """Norm of the full gradient, over all weights, of the Euclidean InfoNCE averaged over a fixed evaluation
    set of `n_batches` batches of `batch` samples (drawn from `seed`): the training objective (the
    expected loss at the training batch size) on n_batches * batch samples. Reference: 0 at a stationary
    point, up to the evaluation set's sampling noise (a few hundredths for 64 batches on the default
    problem); about 1-35 at a random initialisation."""
    g = torch.Generator().manual_seed(seed)
    ws = [w.detach().clone().requires_grad_() for w in weights]
    loss = sum(info_nce_euclidean(*(_product(ws, v) for v in problem.sample(batch, strength, g)))
               for _ in range(n_batches)) / n_batches
    return float(torch.sqrt(sum((q ** 2).sum() for q in torch.autograd.grad(loss, ws))))


def train_linear(problem: LinearProblem, strength: float, seed: int, depth: int = 1, steps: int = 1000,
                 batch: int = 256, lr: float = 0.05, init_scale: float = 1.0) -> LinearFit:
    """Train a product of `depth` square linear maps z = W_depth ... W_1 x with the Euclidean InfoNCE of
    Jing et al. (2022) on fresh samples every step (Adam, cosine decay of the learning rate to 0), and
    measure the full-gradient norm before and after (`linear_grad_norm`, on an evaluation set drawn from
    seed + 10,000). The defaults reach about the evaluation set's noise floor (grad_norm about 0.02-0.06 on
    the default problem, from 1-35 at initialisation)."""
    n = len(problem.lam)
    g = torch.Generator().manual_seed(seed)
    weights = [(torch.randn(n, n, generator=g) * init_scale / np.sqrt(n)).requires_grad_() for _ in range(depth)]
    initial = [w.detach().clone() for w in weights]
    opt = torch.optim.Adam(weights, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)  # decays to 0: no optimiser noise floor
    for _ in range(steps):
        loss = info_nce_euclidean(*(_product(weights, v) for v in problem.sample(batch, strength, g)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    trained = [w.detach() for w in weights]
    norm = lambda ws: linear_grad_norm(problem, strength, ws, 10_000 + seed, batch)  # noqa: E731
    return LinearFit(initial, trained, norm(trained), norm(initial))


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

    One row per (strength, seed, direction): lam, the relative gain predicted by the theory (`pred`) and by
    the data-only alternative (`data_only`, `LinearProblem.data_only_gains`), the measured relative gain
    of the one-layer map (`one_layer`), and of h = W1 x and z = W2 W1 x for the two-layer map
    (`two_layer_h`, `two_layer_z`); the final full-gradient norms of the one- and two-layer fits
    (`grad_norm`, `grad_norm_two_layer`) and the one-layer norm at initialisation (`grad_norm_init`).
    """

    rows = []
    data_only = relative_gains(problem.data_only_gains())
    for s in strengths:
        pred = relative_gains(problem.equilibrium_gains(s))
        for seed in seeds:
            one = train_linear(problem, s, seed, **train_kwargs)
            two = train_linear(problem, s, seed, depth=2, **train_kwargs)
            gains = relative_gains(column_gains(one.trained))
            h, z = relative_gains(column_gains(two.trained[:1])), relative_gains(column_gains(two.trained))
            rows += [{"strength": s, "seed": seed, "direction": j, "lam": problem.lam[j], "pred": pred[j],
                      "data_only": data_only[j], "one_layer": gains[j], "two_layer_h": h[j], "two_layer_z": z[j],
                      "grad_norm": one.grad_norm, "grad_norm_init": one.grad_norm_init,
                      "grad_norm_two_layer": two.grad_norm} for j in range(len(pred))]
    return pd.DataFrame(rows)


def fit_improvement(linear: "pd.DataFrame") -> "pd.DataFrame":
    """C7's primary statistic, per seed: mean |log10 error| of the one-layer map's measured relative gains
    against each prediction, over every strength and direction of `linear` (a `linear_theory_table`).

    Columns: seed, error_theory, error_data_only, error_no_collapse (dex, >= 0; 0 = a perfect fit),
    improvement = min(error_data_only, error_no_collapse) - error_theory (primary; > 0 predicted, CLAIMS.md
    delta 0.05 dex): the theory must beat the better of the two foils, so a trained map that does not collapse
    (which no-collapse fits exactly) or that follows the data spectrum alone (which data-only fits exactly)
    gives improvement <= 0; against one foil alone it cannot fail, since whenever
    data_only <= pred <= measured the difference equals mean(log pred - log data_only) whatever was measured.
    improvement_data_only and improvement_no_collapse are the two single-foil differences (secondary).
    """
    measured = np.log10(linear["one_layer"])
    err = linear.assign(error_theory=np.abs(measured - np.log10(linear["pred"])),
                        error_data_only=np.abs(measured - np.log10(linear["data_only"])),
                        error_no_collapse=np.abs(measured))
    out = err.groupby("seed")[["error_theory", "error_data_only", "error_no_collapse"]].mean().reset_index()
    best_foil = np.minimum(out["error_data_only"], out["error_no_collapse"])
    return out.assign(improvement=best_foil - out["error_theory"],
                      improvement_data_only=out["error_data_only"] - out["error_theory"],
                      improvement_no_collapse=out["error_no_collapse"] - out["error_theory"])


def collapse_counts(linear: "pd.DataFrame") -> "pd.DataFrame":
    """Number of collapsed directions (relative gain < COLLAPSE_THRESHOLD) per (strength, seed) of a
    `linear_theory_table`: measured for the one-layer map (`measured`), predicted by the theory
    (`predicted`) and by the data-only alternative (`data_only`), and measured in h and z of the two-layer
    model (`two_layer_h`, `two_layer_z`). Integers in [0, n]; 0 = no collapse."""
    cols = {"measured": "one_layer", "predicted": "pred", "data_only": "data_only",
            "two_layer_h": "two_layer_h", "two_layer_z": "two_layer_z"}
    below = linear[list(cols.values())].lt(COLLAPSE_THRESHOLD).set_axis(list(cols), axis=1)
    counts = below.groupby([linear["strength"], linear["seed"]]).sum().astype(int)
    return counts.reset_index()[["strength", "seed", *cols]]


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


@dataclass(frozen=True)
class ToyFit:
    """A trained toy: encoder and projector (eval mode) and the full-gradient norm of the training objective
    at the end and at the start (see `toy_grad_norm`)."""

    encoder: nn.Module
    projector: nn.Module
    grad_norm: float
    grad_norm_init: float


def _toy_loss(toy: ToyManifold, encoder: nn.Module, projector: nn.Module, strength: float, batch: int,
              temperature: float, rng: np.random.Generator) -> torch.Tensor:
    """NT-Xent of one batch of pairs of group-action views."""
    theta, content = toy.sample(batch, rng)
    views = [toy.embed(toy.augment(theta, strength, rng), content) for _ in range(2)]
    z = projector(encoder(torch.tensor(np.concatenate(views), dtype=torch.float32)))
    return nt_xent(z[:batch], z[batch:], temperature)


def toy_grad_norm(toy: ToyManifold, encoder: nn.Module, projector: nn.Module, strength: float, seed: int,
                  batch: int = 256, temperature: float = 0.5, weight_decay: float = 5e-4,
                  n_batches: int = 64) -> float:
    """Norm of the full gradient of the training objective, NT-Xent + weight_decay / 2 ||params||^2 (what SGD
    with weight decay minimises), averaged over a fixed evaluation set of `n_batches` batches drawn from
    `seed`, BatchNorm in training mode as in training (on copies: the models are not changed).
    Reference: 0 at a stationary point, up to the evaluation set's sampling noise (a few hundredths);
    about 2 at a random initialisation of the default toy."""

    encoder, projector = copy.deepcopy(encoder).train(), copy.deepcopy(projector).train()
    params = list(encoder.parameters()) + list(projector.parameters())
    rng = np.random.default_rng(seed)
    loss = sum(_toy_loss(toy, encoder, projector, strength, batch, temperature, rng)
               for _ in range(n_batches)) / n_batches
    loss = loss + weight_decay / 2 * sum((p ** 2).sum() for p in params)
    return float(torch.sqrt(sum((q ** 2).sum() for q in torch.autograd.grad(loss, params))))


def train_toy(toy: ToyManifold, strength: float, seed: int, width: int = 64, out_dim: int = 16,
              steps: int = 1000, batch: int = 256, lr: float = 0.05, temperature: float = 0.5) -> ToyFit:
    """Train encoder f: R^ambient -> R^width (2-layer MLP) and projector g: R^width -> R^out_dim (SimCLR MLP)
    with NT-Xent on pairs of group-action views (SGD, momentum 0.9, weight decay 5e-4, cosine decay of the
    learning rate to 0). Seeded by `seed` inside `torch.random.fork_rng`: the caller's global RNG state is
    left unchanged. Returns a `ToyFit` (models in eval mode; gradient norms from `toy_grad_norm` on an
    evaluation set drawn from seed + 10,000: the defaults reach about 0.03-0.09, from 2-3)."""
    wd = 5e-4
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        encoder, projector = mlp([toy.ambient, width, width]), mlp([width, width, out_dim])
        params = list(encoder.parameters()) + list(projector.parameters())
        norm = lambda: toy_grad_norm(toy, encoder, projector, strength, 10_000 + seed, batch,  # noqa: E731
                                     temperature, wd)
        grad_norm_init = norm()
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=wd)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        for _ in range(steps):
            loss = _toy_loss(toy, encoder, projector, strength, batch, temperature, rng)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        return ToyFit(encoder.eval(), projector.eval(), norm(), grad_norm_init)


def push_forward(encoder: nn.Module, x: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Map tangent vectors through the encoder: J_f(x_i) @ directions_i, for x (N, n) and directions
    (N, n, k): (N, D, k). Exact (autodiff), no estimation."""

    single = lambda v: encoder(v[None])[0]  # noqa: E731
    jac = vmap(jacrev(single))(torch.tensor(x, dtype=torch.float32)).detach().numpy()  # (N, D, n)
    return np.einsum("ndk,nkj->ndj", jac.astype(np.float64), directions)


def toy_geometry(toy: ToyManifold, encoder: nn.Module, projector: nn.Module, strength: float, seed: int = 0,
                 n_anchor: int = 200, n_bank: int = 4000, n_views: int = 8, k: int = 40) -> dict[str, float]:
    """C2-C4 on the toy, with exact tangent planes and augmentation directions (means over anchors).

    Returns the invariance of h and z under the group action (at `strength`), effective ranks of h and z,
    the projector-Jacobian effective rank; C4 v2: the locality gap alpha(A_i, T_i) - alpha(A_i, T_j) of the
    projector's kept subspace A_i with the exact tangent planes (`locality_exact`) and with kNN local-PCA
    estimates (`locality_estimated`), and the data-matched suppression of the exact augmentation direction
    against the exact tangent plane (`rho_data`, `geometry.suppression_vs_data`; 1 = like the data);
    C4 v1 (secondary): the alignment of A_i with the exact tangent plane (`alpha_exact`) and with its kNN
    estimate (`alpha_estimated`), the random-subspace baseline, and the suppression of the exact
    augmentation direction against random directions (`rho_exact`); and how well the kNN estimate recovers
    the exact tangent plane (`tangent_recovery`, alignment in [0, 1]).
    """

    rng = np.random.default_rng(10_000 + seed)
    theta, content = toy.sample(n_anchor, rng)
    x = toy.embed(theta, content)
    with torch.no_grad():
        h = encoder(torch.tensor(x, dtype=torch.float32)).numpy()
        views_x = np.stack([toy.embed(toy.augment(theta, strength, rng), content) for _ in range(n_views)], 1)
        vh = encoder(torch.tensor(views_x.reshape(-1, toy.ambient), dtype=torch.float32))
        vz = projector(vh)
        bank = encoder(torch.tensor(toy.embed(*toy.sample(n_bank, rng)), dtype=torch.float32)).numpy()
        z = projector(torch.tensor(h)).numpy()
    vh, vz = vh.numpy().reshape(n_anchor, n_views, -1), vz.numpy().reshape(n_anchor, n_views, -1)
    jac = G.jacobians(projector, h)  # (A, m, D)
    ranks = np.maximum(1, np.rint(G.jacobian_effective_rank(jac))).astype(int)
    kept = [G.kept_subspace(j, r) for j, r in zip(jac, ranks)]
    exact = np.linalg.qr(push_forward(encoder, x, toy.tangent_plane(theta)))[0]  # (A, D, dim), orthonormal
    aug = np.linalg.qr(push_forward(encoder, x, toy.augmentation_direction(theta)[:, :, None]))[0]  # (A, D, 1)
    estimated = G.tangent_planes(h, bank, k, toy.dim)  # (A, D, dim)
    per_anchor = {
        "locality_exact": G.locality_gap(kept, exact, rng),
        "locality_estimated": G.locality_gap(kept, estimated, rng),
        "rho_data": G.suppression_vs_data(jac, aug, exact),
        "alpha_exact": [G.alignment(t, a) for t, a in zip(exact, kept)],
        "alpha_estimated": [G.alignment(t, a) for t, a in zip(estimated, kept)],
        "tangent_recovery": [G.alignment(t, e) for t, e in zip(estimated, exact)],
        "rho_exact": [G.suppression(j, u) for j, u in zip(jac, aug)],
        "alpha_random": np.maximum(ranks, toy.dim) / h.shape[1],
    }
    return {**{key: float(np.mean(v)) for key, v in per_anchor.items()},
            "invariance_h": G.invariance(vh)["invariance"], "invariance_z": G.invariance(vz)["invariance"],
            "erank_h": G.effective_rank(h), "erank_z": G.effective_rank(z), "jacobian_rank": float(ranks.mean())}


def toy_table(toy: ToyManifold, strengths, seeds, **train_kwargs):
    """`toy_geometry` for a model trained at each (strength, seed): one row each, with the final and initial
    full-gradient norms of its training (`grad_norm`, `grad_norm_init`)."""

    rows = []
    for s in strengths:
        for seed in seeds:
            fit = train_toy(toy, s, seed, **train_kwargs)
            rows.append({"strength": s, "seed": seed, "grad_norm": fit.grad_norm, "grad_norm_init": fit.grad_norm_init,
                         **toy_geometry(toy, fit.encoder, fit.projector, s, seed)})
    return pd.DataFrame(rows)


def theory_verdicts(linear: "pd.DataFrame", toy: "pd.DataFrame") -> dict:
    """C7 verdicts (the rule of `stats`). Primary: the per-seed fit improvement of the closed form over the
    better of its two foils, the data-only alternative and no collapse (`fit_improvement`'s `improvement`,
    dex, > 0 predicted, delta DELTAS["C7"]); secondary: over each foil alone. On the toy, at every s > 0:
    log rho_data < 0 (the exact augmentation direction passes less than the exact data directions; delta
    DELTAS["C4_rho"]), the locality gap with the exact tangent planes > 0 (delta DELTAS["C4_locality"]), and v1's
    alignment with the exact tangent plane above the random baseline (secondary, same delta).
    Keys: primary, data_only, no_collapse, toy_rho, toy_locality, toy_alpha; values `stats.ClaimResult`, whose
    intervals are over toy seeds and say so (TOY_COVERS)."""

    fit = fit_improvement(linear)
    toy = toy.assign(log_rho_data=np.log(toy["rho_data"]), alpha_excess=toy["alpha_exact"] - toy["alpha_random"])
    results = {
        "primary": stats.single_claim("C7", "fit improvement of the theory over the better foil (dex)",
                                      fit["improvement"], +1, stats.DELTAS["C7"]),
        "data_only": stats.single_claim("C7", "fit improvement of the theory over the data-only alternative (dex)",
                                        fit["improvement_data_only"], +1, stats.DELTAS["C7"]),
        "no_collapse": stats.single_claim("C7", "fit improvement of the theory over no collapse (dex)",
                                          fit["improvement_no_collapse"], +1, stats.DELTAS["C7"]),
        "toy_rho": stats.per_strength_claim("C7", "toy: log rho of the exact augmentation direction vs the data",
                                            toy, "log_rho_data", -1, stats.DELTAS["C4_rho"]),
        "toy_locality": stats.per_strength_claim("C7", "toy: locality gap, exact tangent planes", toy,
                                                 "locality_exact", +1, stats.DELTAS["C4_locality"]),
        "toy_alpha": stats.per_strength_claim("C7", "toy: alpha(exact tangent) - random baseline", toy,
                                              "alpha_excess", +1, stats.DELTAS["C4_locality"]),
    }
    return {k: dataclasses.replace(r, covers=r.covers.replace(stats.COVERS, TOY_COVERS)) for k, r in results.items()}


# What C7's intervals cover: toy seeds vary the optimiser's initialisation and the sampled toy data, nothing else
TOY_COVERS = ("toy seeds: the optimiser's and the toy data's randomness only; no images, networks or evaluation "
              "draws of the book's sweeps")


def theory_tables(t) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """C7's (linear, toy) tables for TheorySettings `t`: computed once per settings, code (this module, the
    losses it trains with, the geometry it measures with) and torch version, then read from
    $SSLGEO_CACHE/theory/ as JSON (the C7 page and the summary page share one computation)."""

    def compute():
        linear = linear_theory_table(LinearProblem.default(t.n_dims), t.strengths, t.seeds, steps=t.steps)
        toy = toy_table(ToyManifold(), t.toy_strengths, t.seeds)
        return [{"table": name, **df.to_dict("split", index=False)} for name, df in (("linear", linear), ("toy", toy))]

    settings = {**dataclasses.asdict(t), "torch": torch.__version__}
    tables = cached_result("theory", settings, compute, THEORY_CODE, cache_dir() / "theory")
    by_name = {table["table"]: pd.DataFrame(table["data"], columns=table["columns"]) for table in tables}
    return by_name["linear"], by_name["toy"]
