import numpy as np
import pytest
import torch

from sslgeo_lib import geometry as G


def rng(seed=0):
    return np.random.default_rng(seed)


# --- invariance (C2) ---

def test_identical_views_are_perfectly_invariant():
    x = rng().standard_normal((50, 1, 16))
    out = G.invariance(np.repeat(x, 4, axis=1))
    assert abs(out["invariance"] - 1.0) < 1e-12 and out["v_aug"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("k", [2, 8])
def test_views_independent_of_the_image_give_zero_invariance(k):
    views = rng().standard_normal((2000, k, 32))  # views carry no information about the image
    # E[V_aug] = (K-1)/K E||r - mu||^2, so the plain ratio would give 1/K; the K/(K-1) factor removes it
    assert abs(G.invariance(views)["invariance"]) < 0.02


def test_invariance_known_value():
    # two images, two views each, unit vectors: image 1 views e1, e1; image 2 views e2, -e2
    v = np.array([[[1, 0], [1, 0]], [[0, 1], [0, -1]]], dtype=float)
    # V_aug = (0 + 0 + 1 + 1) / 4 = 0.5; grand mean (0.5, 0); V_tot = (0.25*2 + 1.25*2) / 4 = 0.75
    # I = 1 - (2 / 1) * 0.5 / 0.75 = -1/3
    out = G.invariance(v)
    assert out["v_aug"] == pytest.approx(0.5) and out["v_tot"] == pytest.approx(0.75)
    assert out["invariance"] == pytest.approx(-1 / 3)


def test_invariance_needs_two_views():
    with pytest.raises(ValueError, match="at least 2 views"):
        G.invariance(np.ones((3, 1, 2)))


def test_invariance_ignores_feature_scale():
    v = rng().standard_normal((100, 4, 8))
    assert (G.invariance(v)["invariance"]
            == pytest.approx(G.invariance(v * rng(1).uniform(0.1, 10, (100, 4, 1)))["invariance"]))


def test_view_cosine():
    e = np.eye(3)
    assert G.view_cosine(np.stack([e[[0, 0]], e[[1, 1]]])) == pytest.approx(1.0)
    assert G.view_cosine(np.stack([e[[0, 1, 2]]])) == pytest.approx(0.0)


# --- dimension (C3) ---

def _isotropic(n, k, dim, seed=0):
    """n points whose centred matrix has exactly k equal non-zero singular values, in a random k-dim subspace."""
    q = np.linalg.qr(rng(seed).standard_normal((dim, k)))[0]
    u = rng(seed + 1).standard_normal((n, k))
    u = np.linalg.qr(u - u.mean(0))[0]  # orthonormal columns, still centred
    return u @ q.T


@pytest.mark.parametrize("k", [1, 3, 10])
def test_effective_rank_and_participation_ratio_of_rank_k_isotropic_data(k):
    x = _isotropic(200, k, 32) + 5.0  # an offset must not matter (centred)
    assert G.effective_rank(x) == pytest.approx(k, rel=1e-6)
    assert G.participation_ratio(x) == pytest.approx(k, rel=1e-6)
    assert G.pca_dimension(x, 0.99) == k and G.pca_dimension(x, 0.9) == int(np.ceil(0.9 * k - 1e-9))


def test_pca_dimension_known_spectrum():
    x = np.diag([3.0, 2.0, 1.0, 0.0])  # variances 9 : 4 : 1 : 0 (of the centred rows, scaled)
    x = np.vstack([x, -x])
    assert G.pca_dimension(x, 0.6) == 1 and G.pca_dimension(x, 0.9) == 2 and G.pca_dimension(x, 0.99) == 3


@pytest.mark.parametrize("estimator", G.ID_ESTIMATORS)
def test_intrinsic_dimension_of_a_5_ball_in_10_dimensions(estimator):
    import skdim

    ball = np.hstack([skdim.datasets.hyperBall(2000, 5, random_state=0), np.zeros((2000, 5))])
    assert G.intrinsic_dimension(ball, 1000, estimator) == pytest.approx(5, abs=1.0)


def test_intrinsic_dimension_checks_its_arguments():
    with pytest.raises(ValueError, match="unknown ID estimator 'PCA'"):
        G.intrinsic_dimension(np.zeros((10, 2)), 5, "PCA")
    with pytest.raises(ValueError, match="asked for n=20 points, only 10 available"):
        G.intrinsic_dimension(np.zeros((10, 2)), 20, "MLE")


# --- Jacobians, alignment, suppression (C3, C4) ---

def test_jacobian_of_a_linear_projector_is_its_weight():
    from sslgeo_lib.training.models import Projector

    proj = Projector(6, 4, 1, 3)
    jac = G.jacobians(proj, rng().standard_normal((5, 6)))
    assert jac.shape == (5, 3, 6)
    np.testing.assert_allclose(jac, np.broadcast_to(proj.out.weight.detach().numpy(), (5, 3, 6)), atol=1e-6)


def test_jacobian_of_an_mlp_matches_finite_differences():
    from sslgeo_lib.training.models import Projector

    torch.manual_seed(0)
    proj = Projector(5, 7, 3, 2).eval()
    h = rng().standard_normal((3, 5))
    jac = G.jacobians(proj, h)
    eps = 1e-3
    for j in range(5):
        d = np.zeros(5)
        d[j] = eps
        with torch.no_grad():
            fd = (proj(torch.tensor(h + d, dtype=torch.float32))
                  - proj(torch.tensor(h - d, dtype=torch.float32))) / (2 * eps)
        np.testing.assert_allclose(jac[:, :, j], fd.numpy(), atol=2e-3)


def test_jacobian_effective_rank():
    j = np.zeros((2, 4, 6))
    j[0, :2, :2] = np.eye(2)
    j[1] = np.eye(4, 6)
    np.testing.assert_allclose(G.jacobian_effective_rank(j), [2.0, 4.0])


def test_alignment_self_and_orthogonal():
    q = G.random_subspace(20, 4, rng())
    assert G.alignment(q, q) == pytest.approx(1.0)
    e = np.eye(20)
    assert G.alignment(e[:, :3], e[:, 3:7]) == pytest.approx(0.0)
    assert G.alignment(e[:, :2], e[:, :5]) == pytest.approx(1.0)  # contained subspace


def test_random_subspace_alignment_expectation():
    r, d, dim = 3, 5, 40
    t = G.random_subspace(dim, d, rng(1))
    values = [G.alignment(G.random_subspace(dim, r, rng(s)), t) for s in range(2, 2002)]
    # E ||Q_T^T Q_A||_F^2 = r d / D, so the normalised alignment is max(r, d) / D
    assert np.mean(values) == pytest.approx(max(r, d) / dim, rel=0.05)


def test_suppression_of_a_killed_subspace_is_zero():
    dim = 10
    w = np.eye(dim)[:6] * 2.0  # keeps the first 6 coordinates, kills the last 4
    killed, kept = np.eye(dim)[:, 6:], np.eye(dim)[:, :2]
    assert G.suppression(w, killed) == pytest.approx(0.0)
    assert G.suppression(w, kept) == pytest.approx(dim / 6)  # uniform gain on 6 of 10 directions
    assert (np.mean([G.suppression(w, G.random_subspace(dim, 2, rng(s))) for s in range(3000)])
            == pytest.approx(1.0, rel=0.03))


def test_kept_subspace_is_the_row_space():
    w = np.zeros((2, 5))
    w[0, 1], w[1, 3] = 3.0, 1.0
    q = G.kept_subspace(w, 2)
    assert G.alignment(q, np.eye(5)[:, [1, 3]]) == pytest.approx(1.0)
    assert G.alignment(G.kept_subspace(w, 1), np.eye(5)[:, [1]]) == pytest.approx(1.0)  # largest first


def test_local_pca_recovers_a_plane_and_neighbours_exclude_self():
    pts = np.zeros((100, 6))
    pts[:, :2] = rng().standard_normal((100, 2))
    idx = G.neighbours(pts[:3], pts, 10)
    assert idx.shape == (3, 10) and all(i not in row for i, row in enumerate(idx))
    assert G.alignment(G.local_pca(pts[idx[0]], 2), np.eye(6)[:, :2]) == pytest.approx(1.0)
    assert G.local_dimension(pts[idx[0]]) == 2


def test_normalized_jacobian_matches_autodiff():
    torch.manual_seed(0)
    lin = torch.nn.Linear(5, 4)
    h = torch.randn(3, 5)
    jac = torch.stack([torch.autograd.functional.jacobian(lin, v) for v in h]).numpy()
    auto = torch.stack([torch.autograd.functional.jacobian(lambda v: torch.nn.functional.normalize(lin(v), dim=0), v)
                        for v in h]).numpy()
    with torch.no_grad():
        z = lin(h).numpy()
    np.testing.assert_allclose(G.normalized_jacobians(jac, z), auto, atol=1e-5)
    # the radial direction is killed: u^T J_n = 0
    u = z / np.linalg.norm(z, axis=1, keepdims=True)
    np.testing.assert_allclose(np.einsum("nm,nmd->nd", u, G.normalized_jacobians(jac, z)), 0, atol=1e-6)


# --- C4 v2: data-matched suppression and the locality gap (known answers) ---

def _rotation(dim, seed=0):
    return np.linalg.qr(rng(seed).standard_normal((dim, dim)))[0]


def test_suppression_vs_data_of_a_projector_that_kills_the_augmentation_subspace():
    dim = 10
    rot = _rotation(dim)
    killed, kept = rot[:, :4], rot[:, 4:]  # S and its complement, in a random orientation
    jac = 3.0 * kept @ kept.T  # a linear projector: projection onto the complement of S (scale irrelevant)
    x0 = rng(1).standard_normal(dim)
    views = x0 + rng(2).standard_normal((16, 4)) @ killed.T  # views move only inside S
    aug = G.augmentation_directions(views, 2)
    tangent = kept[:, :3]  # data directions, in the kept complement
    assert G.suppression_vs_data(jac, aug, tangent) == pytest.approx(0.0, abs=1e-12)
    assert G.suppression_vs_data(jac, kept[:, 3:5], tangent) == pytest.approx(1.0)  # a kept direction: 1
    mixed = (killed[:, :1] + kept[:, 3:4]) / np.sqrt(2)  # half killed, half kept
    assert G.suppression_vs_data(jac, mixed, tangent) == pytest.approx(0.5)
    batched = G.suppression_vs_data(np.stack([jac, jac]), np.stack([aug, kept[:, 3:5]]), np.stack([tangent, tangent]))
    np.testing.assert_allclose(batched, [0.0, 1.0], atol=1e-12)


def _sphere(n, d, dim, seed):
    """n uniform points of the unit d-sphere, embedded isometrically in R^dim by Q (dim, d + 1)."""
    q = G.random_subspace(dim, d + 1, rng(seed))
    y = rng(seed + 1).standard_normal((n, d + 1))
    return _unit_rows(y) @ q.T, q


def _unit_rows(y):
    return y / np.linalg.norm(y, axis=1, keepdims=True)


def _exact_sphere_tangents(x, q):
    """Orthonormal bases (n, dim, d) of the tangent planes of the embedded sphere at x (n, dim)."""
    y = x @ q  # (n, d + 1), unit
    proj = np.eye(q.shape[1]) - y[:, :, None] * y[:, None, :]  # (n, d + 1, d + 1), rank d
    return q @ np.linalg.eigh(proj)[1][:, :, 1:]  # eigenvalues 0, 1, ..., 1 ascending: drop the normal


class _SphereProjector(torch.nn.Module):
    """The nearest-point map onto the embedded unit sphere, h -> Q (Q^T h / ||Q^T h||): on the sphere its
    Jacobian is the orthogonal projection onto the tangent plane at that point."""

    def __init__(self, q):
        super().__init__()
        self.q = torch.nn.Parameter(torch.tensor(q, dtype=torch.float32), requires_grad=False)

    def forward(self, h):
        y = h @ self.q
        return (y / y.norm(dim=1, keepdim=True)) @ self.q.T


def test_locality_gap_of_the_tangent_projector_of_a_sphere_is_near_its_maximum():
    d, dim = 2, 10
    bank, q = _sphere(4000, d, dim, seed=3)
    anchors = bank[:200]
    exact = _exact_sphere_tangents(anchors, q)
    jac = G.jacobians(_SphereProjector(q), anchors)  # (200, dim, dim)
    kept = [G.kept_subspace(j, d) for j in jac]
    assert np.mean([G.alignment(a, t) for a, t in zip(kept, exact)]) == pytest.approx(1.0, abs=1e-5)
    estimated = G.tangent_planes(anchors, bank, k=20, d=d)  # kNN local PCA, (200, dim, d)
    # the most any estimate can give: alpha(T_i, T_i) - E alpha(T_i, T_j) = 1/(d + 1) on the round sphere
    cross = np.array([[G.alignment(a, b) for b in exact] for a in exact])
    best = 1 - cross[~np.eye(len(exact), dtype=bool)].mean()
    assert best == pytest.approx(1 / (d + 1), abs=0.03)
    gap = G.locality_gap(kept, estimated, rng(4))
    assert gap.shape == (200,) and gap.mean() > 0.6 * best
    fixed = [kept[0]] * len(kept)  # a projector that does not depend on the point
    assert abs(G.locality_gap(fixed, estimated, rng(4)).mean()) < 0.05


def test_locality_gap_compares_with_another_anchor():
    e = np.eye(4)
    planes = [e[:, [i]] for i in range(4)]  # orthogonal lines: alpha(T_i, T_j) = [i == j]
    np.testing.assert_allclose(G.locality_gap(planes, planes, rng()), 1.0)
    with pytest.raises(ValueError):
        G.locality_gap(planes[:1], planes[:1], rng())


def test_same_class_foil_tells_a_point_from_its_class():
    """A projector that keeps one subspace per class (the same for every point of a class) passes the random
    foil, which is usually of another class, but scores exactly 0 against the nearest anchor of its own class;
    the sphere's tangent projector keeps a positive gap against both foils."""
    e = np.eye(6)
    labels = np.repeat([0, 1, 2], 4)
    class_planes = [e[:, 2 * c:2 * c + 2] for c in labels]  # class c keeps coordinates 2c, 2c + 1
    points = np.random.default_rng(0).normal(size=(12, 6))
    partners = G.same_class_partners(points, labels)
    assert (labels[partners] == labels).all() and (partners != np.arange(12)).all()
    d2 = ((points[:, None] - points[None]) ** 2).sum(-1)
    for i, j in enumerate(partners):
        others = [k for k in range(12) if labels[k] == labels[i] and k != i]
        assert d2[i, j] == d2[i, others].min()
    assert G.locality_gap(class_planes, class_planes, rng(1)).mean() > 0.5
    np.testing.assert_allclose(G.locality_gap(class_planes, class_planes, partners=partners), 0.0, atol=1e-12)
    alone = G.same_class_partners(points[:5], labels[:5])  # label 1 has one anchor among the first five
    assert alone[4] == -1 and np.isnan(G.locality_gap(class_planes[:5], class_planes[:5], partners=alone)[4])

    d, dim = 2, 10
    bank, q = _sphere(2000, d, dim, seed=3)
    anchors = bank[:120]
    kept = [G.kept_subspace(j, d) for j in G.jacobians(_SphereProjector(q), anchors)]
    estimated = G.tangent_planes(anchors, bank, k=20, d=d)
    octant = (anchors @ q[:, :1] > 0).ravel().astype(int)  # two "classes": the hemispheres
    gap = G.locality_gap(kept, estimated, partners=G.same_class_partners(anchors, octant))
    assert gap.mean() > 0.0 and np.isfinite(gap).all()


@pytest.mark.parametrize("d", [1, 2])
def test_local_pca_recovers_the_tangent_of_a_curved_manifold(d):
    bank, q = _sphere(3000, d, 8, seed=5)  # d = 1: a circle, d = 2: a sphere
    anchors = bank[:50]
    estimated = G.tangent_planes(anchors, bank, k=10, d=d)
    recovery = [G.alignment(a, b) for a, b in zip(estimated, _exact_sphere_tangents(anchors, q))]
    assert min(recovery) > 0.95
    looped = G.local_pca(bank[G.neighbours(anchors[:1], bank, 10)[0]], d)
    assert G.alignment(looped, estimated[0]) == pytest.approx(1.0)  # batched == one at a time


def test_no_projector_has_the_identity_jacobian():
    from sslgeo_lib.geometry import jacobian_effective_rank, jacobians

    jac = jacobians(None, np.random.default_rng(0).standard_normal((5, 7)))
    assert jac.shape == (5, 7, 7) and np.array_equal(jac[3], np.eye(7))
    np.testing.assert_allclose(jacobian_effective_rank(jac), 7.0)
