"""SSL objectives as pure functions of embeddings: NT-Xent (SimCLR), VICReg, Barlow Twins and BYOL's regression loss."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """NT-Xent (normalised temperature-scaled cross-entropy; Chen et al. 2020, SimCLR eq. 1).

    z1, z2: (N, m) projections of two views of the same N images (row i of each is a positive pair).
    Each of the 2N embeddings is classified against the 2N - 1 others, its partner being the positive.
    Computed in float32 whatever the input dtype. Reference values: collinear embeddings (all rows equal)
    give exactly log(2N - 1); a perfect, well-separated solution tends to 0 as temperature -> 0.
    """
    _check_pair("nt_xent", z1, z2, temperature)
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)  # (2N, m)
    return _pair_cross_entropy(z @ z.T / temperature)


def _check_pair(name: str, z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> None:
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"{name} expects two (N, m) tensors of equal shape, got {tuple(z1.shape)} and "
                         f"{tuple(z2.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")


def _pair_cross_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of (2N, 2N) similarity logits where row i's positive is row i +- N (self excluded)."""
    n = logits.shape[0] // 2
    logits = logits.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(logits.device)
    return F.cross_entropy(logits, target)


def info_nce_euclidean(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """InfoNCE with similarity -||z_a - z_b||^2 / 2 and no normalisation, the form analysed by Jing et al.
    (2022, "Understanding dimensional collapse in contrastive SSL", Sec. 4). Same pairing as `nt_xent`.
    Reference value: collinear (identical) embeddings give log(2N - 1)."""
    _check_pair("info_nce_euclidean", z1, z2, temperature)
    z = torch.cat([z1, z2]).float()
    return _pair_cross_entropy(-torch.cdist(z, z).pow(2) / (2 * temperature))


# --- non-contrastive objectives (B1) -----------------------------------------------------------------------
# Coefficients are each method's published values, also those of solo-learn's CIFAR recipes (da Costa et al. 2022).
VICREG_SIM, VICREG_STD, VICREG_COV = 25.0, 25.0, 1.0   # lambda, mu, nu of Bardes et al. (2022), Sec. 4.3
VICREG_EPS = 1e-4                                     # the epsilon inside the variance term's square root
BARLOW_LAMBDA = 0.0051                                # off-diagonal weight of Zbontar et al. (2021), Sec. 3
BARLOW_SCALE = 0.1                                    # solo-learn's scale_loss for CIFAR (a constant factor)


def vicreg(z1: torch.Tensor, z2: torch.Tensor, sim: float = VICREG_SIM, std: float = VICREG_STD,
           cov: float = VICREG_COV) -> torch.Tensor:
    """VICReg (Bardes, Ponce and LeCun 2022, eq. 6, as their reference code computes it): sim * invariance
    + std * (variance(z1) + variance(z2)) / 2 + cov * (covariance(z1) + covariance(z2)), with invariance = the mean
    squared difference of the pairs over all entries, variance = mean_j relu(1 - sqrt(Var(z_j) + eps)) (unbiased
    Var over the batch) and covariance = the sum of squared off-diagonal entries of the batch covariance over m.
    Float32 whatever the input dtype. Reference values: the variance term is 0 when every dimension has
    Var >= 1 - eps; a collapsed batch (all rows equal) scores std * (1 - sqrt(eps)) = 0.99 std."""
    _check_pair("vicreg", z1, z2, 1.0)
    z1, z2 = z1.float(), z2.float()
    return (sim * F.mse_loss(z1, z2) + std * (vicreg_variance(z1) + vicreg_variance(z2)) / 2
            + cov * (vicreg_covariance(z1) + vicreg_covariance(z2)))


def vicreg_variance(z: torch.Tensor) -> torch.Tensor:
    """VICReg's variance term of one branch (N, m): mean over dimensions of relu(1 - sqrt(Var + eps))."""
    return F.relu(1 - torch.sqrt(z.var(dim=0) + VICREG_EPS)).mean()


def vicreg_covariance(z: torch.Tensor) -> torch.Tensor:
    """VICReg's covariance term of one branch (N, m): sum of squared off-diagonal covariances / m."""
    n, m = z.shape
    zc = z - z.mean(0)
    c = zc.T @ zc / (n - 1)
    return (c.pow(2).sum() - c.diagonal().pow(2).sum()) / m


def barlow_twins(z1: torch.Tensor, z2: torch.Tensor, lambd: float = BARLOW_LAMBDA,
                 scale: float = BARLOW_SCALE) -> torch.Tensor:
    """Barlow Twins (Zbontar et al. 2021, eq. 1), times `scale`: sum_i (1 - C_ii)^2 + lambd sum_{i != j} C_ij^2,
    C the cross-correlation of the two batches, each dimension standardised over the batch (biased std, as
    torch's BatchNorm1d without affine parameters). Float32. Reference values: 0 when C is the identity (z1 = z2
    with uncorrelated dimensions); scale * m when C = 0."""
    _check_pair("barlow_twins", z1, z2, 1.0)
    n = z1.shape[0]
    a, b = (F.batch_norm(z.float(), None, None, training=True, eps=1e-5) for z in (z1, z2))
    c = a.T @ b / n
    on = (1 - c.diagonal()).pow(2).sum()
    off = c.pow(2).sum() - c.diagonal().pow(2).sum()
    return scale * (on + lambd * off)


def byol(p: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BYOL's regression loss (Grill et al. 2020, eq. 2): mean over rows of ||p/|p| - t/|t|||^2 = 2 - 2 cos(p, t),
    the target carrying no gradient. One direction; the training step symmetrises it over the two views.
    Reference values: 0 for aligned rows, 2 for orthogonal rows, 4 for opposite rows."""
    _check_pair("byol", p, target, 1.0)
    return (2 - 2 * F.cosine_similarity(p.float(), target.detach().float(), dim=1)).mean()
