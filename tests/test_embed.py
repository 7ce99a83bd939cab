import numpy as np
import pytest
import torch

from sslgeo_lib.embed import embed, embed_views, encode, layers
from sslgeo_lib.training.augment import PARAM_NAMES
from sslgeo_lib.training.models import build_model


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build_model("small_cnn", 4, 16, 3, 8).eval()


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, (12, 3, 32, 32), dtype=np.uint8)


def test_embed_returns_every_layer_and_matches_the_model(model, images):
    out = embed(model, images)
    assert list(out) == ["h", "hidden1", "hidden2", "z"]
    assert out["h"].shape == (12, 32) and out["hidden2"].shape == (12, 16) and out["z"].shape == (12, 8)
    with torch.no_grad():
        h, z = model(torch.from_numpy(images).float() / 255)
    np.testing.assert_allclose(out["z"], z.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(encode(model.encoder, images), h.numpy(), rtol=1e-5, atol=1e-6)


def test_batches_do_not_change_results(model, images, monkeypatch):
    full = embed(model, images)
    monkeypatch.setattr("sslgeo_lib.embed.BATCH", 5)
    np.testing.assert_allclose(embed(model, images)["z"], full["z"], rtol=1e-5, atol=1e-6)


def test_views_at_strength_zero_equal_the_clean_features(model, images):
    views = embed_views(model, images, 0.0, n_views=3)
    clean = embed(model, images)
    assert views["h"].shape == (12, 3, 32) and views["z"].shape == (12, 3, 8)
    for k in range(3):
        np.testing.assert_allclose(views["z"][:, k], clean["z"], rtol=1e-5, atol=1e-6)
    assert set(PARAM_NAMES) == {k[len("param_"):] for k in views if k.startswith("param_")}
    assert (views["param_area"] == 1).all()


def test_views_are_seeded_and_carry_their_parameters(model, images):
    a = embed_views(model, images, 1.0, 2, seed=3)
    b = embed_views(model, images, 1.0, 2, seed=3)
    c = embed_views(model, images, 1.0, 2, seed=4)
    np.testing.assert_array_equal(a["z"], b["z"])
    assert not np.array_equal(a["param_area"], c["param_area"])
    assert a["param_area"].shape == (12, 2) and (a["param_area"] < 1).all()


def test_layers_of_a_float_batch(model):
    out = layers(model, torch.rand(2, 3, 32, 32))
    assert set(out) == {"h", "hidden1", "hidden2", "z"}


@pytest.mark.parametrize("encoder", ["small_cnn", "small_resnet", "resnet18"])
def test_inference_folds_every_batchnorm_and_keeps_the_function(encoder):
    from sslgeo_lib.embed import for_inference

    torch.manual_seed(0)
    model = build_model(encoder, 4, 16, 2, 8)
    for m in model.encoder.modules():  # trained-like statistics, so that folding has something to change
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.normal_()
            m.bias.data.normal_()
    fast = for_inference(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.encoder.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.encoder.modules())  # the model is unchanged
    x = torch.rand(6, 3, 32, 32)
    with torch.no_grad():
        plain, folded = model.encoder(x), fast.encoder(x.contiguous(memory_format=torch.channels_last))
    np.testing.assert_allclose(folded.numpy(), plain.numpy(), rtol=1e-4, atol=1e-4 * float(plain.abs().max()))


@pytest.fixture
def one_run(cifar, isolated_store):
    from sslgeo_lib.presets import make_preset
    from sslgeo_lib.sweep import sweep

    (run,) = sweep(make_preset("smoke", seeds="[0]", strengths="[0.0]"), progress=False)
    return run


def test_feature_caches_are_keyed_by_the_device_that_computed_them(one_run, monkeypatch):
    from sslgeo_lib import embed as E

    seen = []
    real = type(one_run).cached

    def spy(self, name, settings, compute, code):
        seen.append((name, settings.get("device")))
        return real(self, name, settings, compute, code)

    monkeypatch.setattr(type(one_run), "cached", spy)
    E.clean_features(one_run, "test", 50)
    E.view_features(one_run, 50, 0.5, 2)
    here = E.feature_device().type
    assert {name for name, _ in seen} == {"clean-test", "g0", "views"}
    assert all(device == here for _, device in seen), seen
    seen.clear()
    E.clean_features(one_run, "test", 50, device="cpu")  # a hit here; on a GPU machine computed anew, g0 too
    assert seen[0] == ("clean-test", "cpu") and all(device == "cpu" for _, device in seen), seen


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_features_agree_with_the_cpu_in_fp32(one_run):
    """On a GPU the features are computed there (cached apart from the CPU's) in fp32 without TF32: they agree with
    the CPU's to float rounding, and identity views (s = 0) reproduce the clean features."""
    from sslgeo_lib import embed as E

    gpu, cpu = E.clean_features(one_run, "test", 200), E.clean_features(one_run, "test", 200, device="cpu")
    assert E.feature_device().type == "cuda"
    np.testing.assert_array_equal(gpu["index"], cpu["index"])
    for layer in ("h", "z", "z0"):
        np.testing.assert_allclose(gpu[layer], cpu[layer], rtol=1e-3, atol=1e-4)
    views = E.view_features(one_run, 200, 0.0, 2)
    np.testing.assert_allclose(views["h"], np.repeat(gpu["h"][:, None], 2, 1), rtol=1e-4, atol=1e-5)
