import math

import pytest
import torch
import torch.nn.functional as F

from sslgeo_lib.training.losses import nt_xent


def slow_nt_xent(z1, z2, tau):
    """Term-by-term NT-Xent (SimCLR eq. 1), averaged over all 2N anchors."""
    z = F.normalize(torch.cat([z1, z2]), dim=1).double()
    n2 = len(z)
    total = 0.0
    for i in range(n2):
        j = (i + n2 // 2) % n2
        denom = sum(math.exp(float(z[i] @ z[k]) / tau) for k in range(n2) if k != i)
        total += -math.log(math.exp(float(z[i] @ z[j]) / tau) / denom)
    return total / n2


@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0])
def test_matches_the_slow_reference(tau):
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    assert nt_xent(z1, z2, tau).item() == pytest.approx(slow_nt_xent(z1, z2, tau), rel=1e-5)


@pytest.mark.parametrize("n", [1, 4, 32])
def test_collinear_embeddings_give_log_2n_minus_1(n):
    z = torch.ones(n, 7) * 3.0
    assert nt_xent(z, z.clone(), 0.5).item() == pytest.approx(math.log(2 * n - 1), rel=1e-6)


def test_perfect_separation_goes_to_zero():
    z = torch.eye(4)  # four orthogonal pairs
    assert nt_xent(z, z.clone(), 0.01).item() < 1e-10


def test_bf16_inputs_are_computed_in_float32():
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    loss = nt_xent(z1.bfloat16(), z2.bfloat16(), 0.5)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(nt_xent(z1, z2, 0.5).item(), rel=2e-2)


def test_bad_inputs():
    with pytest.raises(ValueError, match="equal shape"):
        nt_xent(torch.ones(3, 2), torch.ones(4, 2))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        nt_xent(torch.ones(3, 2), torch.ones(3, 2), 0.0)
