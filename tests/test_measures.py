"""The per-run measurement tables on a tiny two-seed sweep: shapes, ranges and exact values where known."""
import dataclasses

import numpy as np
import pytest

from sslgeo_lib import measures
from sslgeo_lib.presets import make_preset
from sslgeo_lib.sweep import run_table, sweep, training_curves


@pytest.fixture(scope="module")
def setup(cifar):
    p = make_preset("smoke", seeds="[0, 1]", n_test="200", n_anchor="20")
    return p.eval, sweep(p, progress=False), p


def test_invariance_table(setup):
    ev, runs, _ = setup
    df = measures.invariance_table(runs, ev)
    assert len(df) == len(runs) * 2 * 3 and set(df["eval"]) == {"train", "fixed"}
    identity = df[(df.strength == 0) & (df["eval"] == "train")]
    np.testing.assert_allclose(identity["invariance"], 1.0)  # s = 0 views are the image itself
    np.testing.assert_allclose(identity["cosine"], 1.0)
    assert (df["invariance"] <= 1 + 1e-12).all()


def test_evaluation_draws_follow_the_run_seed(setup):
    from sslgeo_lib.embed import clean_features

    _, runs, _ = setup
    a, b = (clean_features(r, "test", 200)["index"] for r in runs[:2])  # seeds 0 and 1, same strength
    assert len(a) == len(b) == 200 and not np.array_equal(a, b)


def test_transfer_table(setup):
    ev, runs, _ = setup
    df = measures.transfer_table(runs, ev)
    assert list(df[df.seed == 0].drop_duplicates("layer")["layer"]) == ["h", "hidden1", "z", "z0"]
    assert df[["linear", "knn"]].stack().between(0, 1).all()
    assert df["linear"].mean() > 0.15  # better than chance (0.1) even after one epoch
    assert set(df["C"]) <= set(ev.probe_c_grid)


def test_dimension_table(setup):
    ev, runs, p = setup
    df = measures.dimension_table(runs, ev.replace(n_id=150))
    er = df[df.measure == "effective rank"]
    dims = {"h": 8 * p.base.encoder_width, "z": p.base.projector_out, "J": p.base.projector_out,
            "z0": p.base.projector_out, "h_top_m": p.base.projector_out}
    assert all(1 <= row.value <= dims[row.layer] for row in er.itertuples())
    assert set(df[df.layer == "J"]["measure"]) == {"effective rank"}
    ratio = measures.erank_ratio(df)
    np.testing.assert_allclose(np.exp(ratio["log_ratio"]), ratio["z"] / ratio["h"])


def test_tangent_table(setup):
    ev, runs, _ = setup
    df = measures.tangent_table(runs, ev.replace(tangent_d=4))
    assert len(df) == len(runs) * 2 * len(measures.R_MODES)
    assert df[["alpha", "alpha_other", "alpha_global", "alpha_random"]].stack().between(0, 1 + 1e-9).all()
    np.testing.assert_allclose(df["locality_gap"], df["alpha"] - df["alpha_other"], atol=1e-12)
    fixed = df[df.d_mode == "fixed"]
    assert (fixed["d"] == 4).all() and (fixed[fixed.r_mode == "d"]["r"] == 4).all()
    assert (df[["rho_data", "rho_random", "rho_normalized"]] > 0).all().all()


def test_retention_table(setup):
    ev, runs, _ = setup
    df = measures.retention_table(runs, ev)
    assert len(df) == len(runs) * 4 * 11  # h, z, z0 and z / ||z||
    assert df[df.kind == "accuracy"]["value"].dropna().between(0, 1).all()


def test_run_table_and_curves(setup):
    _, runs, _ = setup
    table = run_table(runs)
    assert len(table) == 4 and (table["images/s"] > 0).all()
    loss, knn = training_curves(runs)
    assert set(loss.columns) == {"strength", "seed", "epoch", "loss"} and len(knn) == 4 * runs[0].config.epochs


def test_removing_the_radial_direction_removes_a_fake_locality_gap():
    """A projector that keeps only the norm of h (plus one fixed direction) and tangent planes that contain each
    anchor's radial direction: a large locality gap that says nothing about the tangent plane, and none once
    the radial direction is removed from both."""
    from sslgeo_lib import geometry
    from sslgeo_lib.measures import _without

    rng = np.random.default_rng(0)
    h = rng.standard_normal((200, 20)) * rng.uniform(0.5, 2, (200, 1))
    fixed = np.linalg.qr(rng.standard_normal((20, 3)))[0]
    u = h / np.linalg.norm(h, axis=1, keepdims=True)
    kept = [np.linalg.qr(np.column_stack([u[i], fixed[:, 0]]))[0] for i in range(200)]
    tangents = [np.linalg.qr(np.column_stack([u[i], fixed[:, 1:]]))[0] for i in range(200)]
    fake = geometry.locality_gap(kept, tangents, np.random.default_rng(1)).mean()
    clean = geometry.locality_gap(_without(kept, h), _without(tangents, h), np.random.default_rng(1)).mean()
    assert fake > 0.3 and abs(clean) < 0.02


def test_progress_table_at_the_end_equals_the_claim_pages(setup):
    """B4's last point is computed like C1's kNN gap, C2's primary and C3's primary: the same numbers."""
    from sslgeo_lib.measures import erank_ratio, layer_difference, progress_table

    ev, runs, _ = setup
    prog = progress_table(runs, ev)
    end = prog[prog["progress"] == 1].set_index(["strength", "seed"])
    knn = layer_difference(measures.transfer_table(runs, ev), "knn", a="z0", b="z").set_index(["strength", "seed"])
    inv = measures.layer_difference(measures.invariance_table(runs, ev), "invariance", keys=("eval",), a="z", b="z0")
    inv = inv[inv["eval"] == "train"].set_index(["strength", "seed"])
    er = erank_ratio(measures.dimension_table(runs, ev)).set_index(["strength", "seed"])
    np.testing.assert_allclose(end["C1_knn"], knn.loc[end.index, "knn"])
    np.testing.assert_allclose(end["C2"], inv.loc[end.index, "invariance"])
    np.testing.assert_allclose(end["C3"], er.loc[end.index, "log_learned"])
    assert sorted(set(prog["progress"])) == [0.25, 0.5, 1.0]


def test_probes_and_tangent_planes_use_n_probe_train_images(setup, monkeypatch):
    """n_probe_train > 0 (the gpu-lite preset): the probes and C4's tangent planes use that many class-balanced
    training images drawn by the run's seed, not the run's whole training subset; each table computed before
    with the default setting is recomputed, not read from its cache."""
    import inspect

    from sslgeo_lib import embed

    ev, runs, _ = setup
    for table in (measures.transfer_table, measures.tangent_table, measures.progress_table):
        table(runs[:1], ev)  # cache the default setting's rows
    sizes = {}
    real = embed.clean_features

    def spy(run, split, n, device="cpu"):
        out = real(run, split, n, device)
        if split == "train":
            caller = inspect.stack()[1].function
            sizes.setdefault(caller, []).append((n, len(out["y"]), np.bincount(out["y"]).min(),
                                                 np.bincount(out["y"]).max()))
        return out

    monkeypatch.setattr(measures, "clean_features", spy)
    small = ev.replace(n_probe_train=300)
    df = measures.transfer_table(runs[:1], small)
    measures.tangent_table(runs[:1], small)
    measures.progress_table(runs[:1], small)
    assert set(sizes) == {"rows_of", "_tangent_rows"} and len(sizes["rows_of"]) == 1 + len(runs[0].epochs)
    assert all(s == (300, 300, 30, 30) for calls in sizes.values() for s in calls)  # 30 of each of 10 classes
    assert df["linear"].between(0, 1).all()
    with pytest.raises(ValueError, match="n_probe_train must be >= 0"):
        ev.replace(n_probe_train=-1)


def test_the_untrained_baseline_is_probed_on_the_trained_runs_images(setup, monkeypatch):
    """The methods page's floor is probed like the trained runs: on their n_probe_train images when set, on
    the run's own training subset otherwise, and on the same test images."""
    import dataclasses

    from sslgeo_lib import embed, probes
    from sslgeo_lib.sweep import untrained_baseline

    _, runs, p = setup
    seen = []

    def spy(h_train, y_train, h_test, y_test, *args):
        seen.append((len(h_train), np.bincount(y_train).tolist(), len(h_test)))
        return {"accuracy": 0.1}

    monkeypatch.setattr(probes, "linear_probe", spy)
    one = dataclasses.replace(p, seeds=(0,))
    untrained_baseline(one)
    untrained_baseline(dataclasses.replace(one, eval=p.eval.replace(n_probe_train=300)))
    own = embed.clean_features(runs[0], "train", 0)["y"]
    assert seen == [(len(own), np.bincount(own).tolist(), 200), (300, [30] * 10, 200)]


def test_learning_table_pairs_each_run_with_its_own_untrained_encoder(setup, monkeypatch):
    """Each run's protocol kNN beside its untrained encoder's (same seed: the untrained numbers of two seeds
    differ, of two strengths at one seed agree), the gain their difference; a second call reads the cache."""
    from sslgeo_lib import monitor
    from sslgeo_lib.sweep import learning_table

    ev, runs, _ = setup
    df = learning_table(runs, ev)
    assert len(df) == len(runs) and np.allclose(df["gain"], df["knn"] - df["knn_untrained"])
    by_seed = df.groupby("seed")["knn_untrained"].nunique()
    assert (by_seed == 1).all() and df.groupby("seed")["knn_untrained"].first().nunique() == 2
    monkeypatch.setattr(monitor, "knn_of_h", lambda *a: pytest.fail("recomputed"))
    assert learning_table(runs, ev).equals(df)


def test_the_untrained_knn_is_computed_once_per_initial_encoder(cifar, monkeypatch):
    """`untrained_knn` equals the protocol's kNN of `untrained_encoder`, and runs of one seed that differ in what
    training does (strength, objective, projector) share it: it is computed again only for another seed, encoder,
    protocol or data content."""
    from sslgeo_lib import monitor
    from sslgeo_lib.config import EvalSettings, RunConfig

    ev = EvalSettings(protocol_bank=300, protocol_queries=100)
    base = RunConfig(encoder_width=4, projector_width=16, projector_out=8)
    computed = []
    knn_of_h = monitor.knn_of_h
    monkeypatch.setattr(monitor, "_UNTRAINED_KNN", {})
    monkeypatch.setattr(monitor, "knn_of_h", lambda *a: computed.append(a[1:]) or knn_of_h(*a))
    first = monitor.untrained_knn(base, ev)
    assert first == knn_of_h(monitor.untrained_encoder(base, ev), "cifar10", "cpu", ev) and len(computed) == 1
    for same in (base.replace(strength=0.0), base.replace(method="byol"), base.replace(projector_depth=3)):
        assert monitor.untrained_knn(same, ev) == first
    assert len(computed) == 1
    for other in (base.replace(seed=1), base.replace(encoder_width=8)):
        monitor.untrained_knn(other, ev)
    assert len(computed) == 3
    monitor.untrained_knn(base, ev.replace(protocol_bank=200))
    assert len(computed) == 4
    data = monitor.load_dataset("cifar10")  # the same name with other content (another $SSLGEO_DATA, an edited tree)
    monkeypatch.setattr(monitor, "load_dataset", lambda name: dataclasses.replace(data, fingerprint="other"))
    monitor.untrained_knn(base, ev)
    assert len(computed) == 5


def test_batchnorm_reestimation_gives_the_bank_statistics():
    """After re-estimation, each BatchNorm's running mean is the mean of its input over the images (one batch
    here, so exact), and the encoder is left in eval mode."""
    import torch

    from sslgeo_lib.embed import image_batches, reestimate_batchnorm
    from sslgeo_lib.training.models import small_cnn

    torch.manual_seed(0)
    enc = small_cnn(4)
    x = np.random.default_rng(0).integers(0, 256, (50, 3, 32, 32), dtype=np.uint8)
    reestimate_batchnorm(enc, image_batches(x, "cpu"))
    first_conv, first_bn = enc[1], enc[2]
    with torch.no_grad():
        pre = first_conv(enc[0](torch.from_numpy(x).float() / 255))
    torch.testing.assert_close(first_bn.running_mean, pre.mean(dim=(0, 2, 3)), rtol=1e-5, atol=1e-6)
    assert not enc.training


def test_g0_is_the_runs_projector_at_initialisation_with_batchnorm_on_its_trained_h(setup):
    """z0 = g0(h): g0 has the weights the run started from (its seed) and BatchNorm statistics of the run's trained
    h over its training images (one batch of the smoke run's 1,000 here, so the mean is exact); the tables read it
    as a layer."""
    import torch

    from sslgeo_lib.data import load_dataset
    from sslgeo_lib.embed import clean_features, encode, initial_projector, project, split_indices
    from sslgeo_lib.training.loop import new_model

    ev, runs, _ = setup
    run = runs[-1]
    g0, start = initial_projector(run), new_model(run.config).projector
    trained = run.model().projector
    first = g0.hidden[0][0].weight
    torch.testing.assert_close(first, start.hidden[0][0].weight)
    assert not torch.allclose(first, trained.hidden[0][0].weight)  # training moved the projector
    data = load_dataset(run.config.dataset)
    own = split_indices(run.config, "train", data.y_train, 0)
    h = torch.from_numpy(encode(run.model().encoder, data.x_train[own]))
    with torch.no_grad():
        torch.testing.assert_close(g0.hidden[0][1].running_mean, (h @ first.T).mean(0), rtol=1e-4, atol=1e-5)
    assert not g0.training
    clean = clean_features(run, "test", 200)
    np.testing.assert_allclose(clean["z0"], project(g0, clean["h"]), rtol=1e-5, atol=1e-6)
    table = measures.transfer_table(runs, ev)
    z0 = table[table["layer"] == "z0"]
    assert len(z0) == len(runs) and z0["depth"].isna().all() and z0["linear"].between(0, 1).all()
    inv = measures.invariance_table(runs, ev)
    assert set(inv["layer"]) == {"h", "z", "z0"}
    dims = measures.erank_ratio(measures.dimension_table(runs, ev))
    np.testing.assert_allclose(dims["log_learned"], np.log(dims["z"] / dims["z0"]))
    assert (dims["h_top_m"] <= dims["h"] + 1e-9).all()  # a projection on m principal components keeps less
    ret = measures.retention_table(runs, ev)
    assert set(ret["layer"]) == {"h", "z", "z0", "z_unit"}
