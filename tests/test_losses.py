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


# --- VICReg, Barlow Twins, BYOL: known answers ----------------------------------------------------------------

def test_vicreg_on_a_hand_computed_batch():
    """z1 = [[0, 0], [2, 0]], z2 = [[0, 2], [2, 2]]: every pair differs by 2 in the second coordinate, so the
    invariance term is mean((0, 2)^2 over entries) = 2. Var(z1) = (2, 0) (unbiased), Var(z2) = (2, 0):
    variance term of each = (relu(1 - sqrt(2 + eps)) + relu(1 - sqrt(eps))) / 2 = (1 - 0.01) / 2; the covariance
    of each is 0 (a constant column)."""
    from sslgeo_lib.training.losses import VICREG_EPS, vicreg

    z1 = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    z2 = torch.tensor([[0.0, 2.0], [2.0, 2.0]])
    var = (1 - math.sqrt(VICREG_EPS)) / 2
    expected = 25 * 2.0 + 25 * (var + var) / 2 + 1 * 0.0
    assert vicreg(z1, z2).item() == pytest.approx(expected, rel=1e-6)


def test_vicreg_terms_at_their_optima_and_at_collapse():
    from sslgeo_lib.training.losses import vicreg, vicreg_covariance, vicreg_variance

    g = torch.Generator().manual_seed(0)
    # an orthogonal design: columns centred, uncorrelated, unbiased variance exactly 2
    q, _ = torch.linalg.qr(torch.randn(64, 9, generator=g, dtype=torch.float64))
    z = (q[:, 1:] - q[:, 1:].mean(0)).float()
    z = z / z.std(0) * math.sqrt(2.0)
    assert vicreg_variance(z).item() == 0.0                      # every std above 1: no penalty
    collapsed = torch.ones(16, 8)
    assert vicreg_variance(collapsed).item() == pytest.approx(1 - 0.01, rel=1e-6)
    assert vicreg(collapsed, collapsed).item() == pytest.approx(25 * (1 - 0.01), rel=1e-6)
    correlated = torch.randn(256, 1, generator=g).repeat(1, 4)    # four identical columns of variance v
    v = correlated[:, 0].var().item()
    assert vicreg_covariance(correlated).item() == pytest.approx(12 * v ** 2 / 4, rel=1e-5)


def test_barlow_twins_at_the_identity_at_zero_correlation_and_by_hand():
    from sslgeo_lib.training.losses import BARLOW_LAMBDA, BARLOW_SCALE, barlow_twins

    g = torch.Generator().manual_seed(1)
    # orthonormal columns orthogonal to the constant vector: centred, uncorrelated, of equal norm
    design = torch.cat([torch.ones(32, 1, dtype=torch.float64),
                        torch.randn(32, 8, generator=g, dtype=torch.float64)], 1)
    q = torch.linalg.qr(design)[0]
    z, z2 = q[:, 1:5].float(), q[:, 5:9].float()  # C(z, z) = I, C(z, z2) = 0
    assert barlow_twins(z, z).item() == pytest.approx(0.0, abs=1e-5)
    assert barlow_twins(z, z2).item() == pytest.approx(BARLOW_SCALE * 4, rel=1e-4)
    z2 = (z2 + 0.5 * z).float()  # partly correlated: compare with the formula term by term
    c = (F.batch_norm(z, None, None, training=True).T @ F.batch_norm(z2, None, None, training=True)) / 32
    by_hand = BARLOW_SCALE * (((1 - c.diagonal()) ** 2).sum() + BARLOW_LAMBDA * (c ** 2).sum()
                              - BARLOW_LAMBDA * (c.diagonal() ** 2).sum())
    assert barlow_twins(z, z2).item() == pytest.approx(by_hand.item(), rel=1e-5)


@pytest.mark.parametrize("name", ["vicreg", "barlow_twins"])
def test_batch_objectives_are_symmetric_and_permutation_invariant(name):
    from sslgeo_lib.training import losses

    fn = getattr(losses, name)
    g = torch.Generator().manual_seed(2)
    z1, z2 = torch.randn(20, 6, generator=g), torch.randn(20, 6, generator=g)
    perm = torch.randperm(20, generator=g)
    assert fn(z1, z2).item() == pytest.approx(fn(z2, z1).item(), rel=1e-5)
    assert fn(z1[perm], z2[perm]).item() == pytest.approx(fn(z1, z2).item(), rel=1e-5)
    assert fn(z1, z2[perm]).item() != pytest.approx(fn(z1, z2).item(), rel=1e-3)  # pairs matter


def test_byol_regression_loss_reference_values_and_stopped_target():
    from sslgeo_lib.training.losses import byol

    p = torch.tensor([[1.0, 0.0], [0.0, 3.0], [2.0, 2.0]], requires_grad=True)
    assert byol(p, p * 5).item() == pytest.approx(0.0, abs=1e-6)       # aligned (scale does not matter)
    assert byol(p, -p).item() == pytest.approx(4.0, abs=1e-6)          # opposite
    t = torch.tensor([[0.0, 1.0], [-1.0, 0.0], [1.0, -1.0]], requires_grad=True)
    assert byol(p, t).item() == pytest.approx(2.0, abs=1e-6)           # orthogonal
    byol(p, t).backward()
    assert t.grad is None and p.grad is not None                       # no gradient into the target
