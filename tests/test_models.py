import pytest
import torch

from sslgeo_lib.training.models import Projector, build_encoder, build_model, cifar_resnet18, encoder_dim, small_cnn


def test_small_cnn_dimension():
    assert encoder_dim(small_cnn(8)) == 64 and encoder_dim(small_cnn(32)) == 256
    assert encoder_dim(build_encoder("small_resnet", 8)) == 64 and encoder_dim(build_encoder("small_resnet", 32)) == 256


def test_cifar_resnet18_has_the_cifar_stem():
    net = cifar_resnet18()
    resnet = net[1]
    assert resnet.conv1.kernel_size == (3, 3) and resnet.conv1.stride == (1, 1)
    assert isinstance(resnet.maxpool, torch.nn.Identity) and isinstance(resnet.fc, torch.nn.Identity)
    net.eval()
    with torch.no_grad():
        assert net(torch.rand(2, 3, 32, 32)).shape == (2, 512)
        # no stride-2 stem: the last stage still sees 4x4 maps from a 32x32 input
        stem = torch.nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool, resnet.layer1)
        assert stem(torch.rand(1, 3, 32, 32)).shape[-1] == 32


def test_projector_layers():
    proj = Projector(64, 32, 3, 16).eval()
    z, hidden = proj(torch.rand(5, 64), hidden=True)
    assert z.shape == (5, 16) and [a.shape for a in hidden] == [(5, 32), (5, 32)]
    assert all((a >= 0).all() for a in hidden)  # after ReLU


def test_linear_projector_is_affine():
    proj = Projector(8, 99, 1, 4)
    h = torch.rand(3, 8)
    torch.testing.assert_close(proj(h), h @ proj.out.weight.T + proj.out.bias)
    assert len(proj.hidden) == 0


def test_model_returns_h_and_z():
    model = build_model("small_cnn", 8, 32, 2, 16).eval()
    h, z = model(torch.rand(4, 3, 32, 32))
    assert h.shape == (4, 64) and z.shape == (4, 16)


def test_bad_names():
    with pytest.raises(ValueError, match="unknown encoder 'vgg'; accepted: small_cnn, small_resnet, resnet18"):
        build_encoder("vgg")
    with pytest.raises(ValueError, match="depth must be >= 1"):
        Projector(8, 8, 0, 4)


def test_depth_zero_has_no_projector_and_z_is_h():
    model = build_model("small_cnn", 8, 32, 0, 16).eval()
    assert model.projector is None
    assert not any(k.startswith("projector") for k in model.state_dict())
    h, z = model(torch.rand(4, 3, 32, 32))
    assert z is h and h.shape == (4, 64)
    with pytest.raises(ValueError, match="projector depth must be >= 0"):
        build_model("small_cnn", 8, 32, -1, 16)


def test_depth_zero_layers_are_h_and_z_equal():
    from sslgeo_lib.embed import layers

    model = build_model("small_cnn", 8, 32, 0, 16).eval()
    out = layers(model, torch.rand(3, 3, 32, 32))
    assert list(out) == ["h", "z"] and out["z"] is out["h"]
