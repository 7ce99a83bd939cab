"""SSL objectives as pure functions of embeddings."""
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
