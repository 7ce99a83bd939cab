"""Encoders, the projector MLP, and the encoder+projector pair.

Shapes: images (B, 3, 32, 32) float in [0, 1]; `h = encoder(x)` (B, D); `z = projector(h)` (B, m).
Projector depth 0 means no projector module at all: the loss acts on h, and z is h itself.
A model never computes a loss (see `losses.py`).
"""
from __future__ import annotations

import torch
import torchvision
from torch import nn

ENCODERS = ("small_cnn", "small_resnet", "resnet18")

# CIFAR-10 channel statistics of the training set (Krizhevsky 2009), applied inside the encoder
# so that every caller feeds plain [0, 1] images.
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


class Normalize(nn.Module):
    def __init__(self, mean=CIFAR_MEAN, std=CIFAR_STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


def _conv_bn(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


def small_cnn(width: int = 32) -> nn.Sequential:
    """A small 4-conv CPU encoder; output dimension D = 8 * width.

    conv(w) @32 -> pool -> conv(2w) @16 -> pool -> conv(4w) @8 -> pool -> conv(8w) @4 -> global average
    pool; each conv is 3x3-BN-ReLU, each pool a 2x2 max-pool. Width 32 gives D = 256. Pooling right after
    the first conv keeps the costly full-resolution work to a single 3 -> w convolution.
    """
    w = width
    return nn.Sequential(
        Normalize(),
        *_conv_bn(3, w), nn.MaxPool2d(2),
        *_conv_bn(w, 2 * w), nn.MaxPool2d(2),
        *_conv_bn(2 * w, 4 * w), nn.MaxPool2d(2),
        *_conv_bn(4 * w, 8 * w),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )


class _Residual(nn.Module):
    """A ResNet basic block at one resolution: relu(bn(conv(relu(bn(conv(x))))) + shortcut(x)), the shortcut a
    1x1 conv + BN where the width changes."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.body = nn.Sequential(*_conv_bn(c_in, c_out), nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c_out))
        self.shortcut = (nn.Identity() if c_in == c_out else
                         nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out)))

    def forward(self, x):
        return torch.relu(self.body(x) + self.shortcut(x))


def small_resnet(width: int = 32) -> nn.Sequential:
    """small_cnn with each of its last three convolutions replaced by a residual basic block (two 3x3 convs):
    conv(w) @32 -> pool -> block(2w) @16 -> pool -> block(4w) @8 -> pool -> block(8w) @4 -> global average pool.
    D = 8 * width, as small_cnn; about twice its arithmetic."""
    w = width
    return nn.Sequential(
        Normalize(),
        *_conv_bn(3, w), nn.MaxPool2d(2),
        _Residual(w, 2 * w), nn.MaxPool2d(2),
        _Residual(2 * w, 4 * w), nn.MaxPool2d(2),
        _Residual(4 * w, 8 * w),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )


def cifar_resnet18() -> nn.Sequential:
    """torchvision ResNet-18 with the CIFAR stem (3x3 stride-1 conv, no max-pool); D = 512."""
    net = torchvision.models.resnet18(weights=None)
    net.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    return nn.Sequential(Normalize(), net)


def build_encoder(name: str, width: int = 32) -> nn.Module:
    if name == "small_cnn":
        return small_cnn(width)
    if name == "small_resnet":
        return small_resnet(width)
    if name == "resnet18":
        return cifar_resnet18()
    raise ValueError(f"unknown encoder {name!r}; accepted: {', '.join(ENCODERS)}")


class Projector(nn.Module):
    """SimCLR projector MLP: (depth - 1) hidden blocks Linear-BN-ReLU of `width`, then Linear to `out_dim`.

    depth = 1 is a single linear map. `forward(h, hidden=True)` also returns the hidden activations
    (after each ReLU), for layer-wise probes.
    """

    def __init__(self, in_dim: int, width: int, depth: int, out_dim: int):
        super().__init__()
        if depth < 1:
            raise ValueError(f"projector depth must be >= 1, got {depth}")
        dims = [in_dim] + [width] * (depth - 1)
        self.hidden = nn.ModuleList(
            nn.Sequential(nn.Linear(a, b, bias=False), nn.BatchNorm1d(b), nn.ReLU(inplace=True))
            for a, b in zip(dims[:-1], dims[1:])
        )
        self.out = nn.Linear(dims[-1], out_dim)

    def forward(self, h: torch.Tensor, hidden: bool = False):
        acts = []
        for block in self.hidden:
            h = block(h)
            acts.append(h)
        z = self.out(h)
        return (z, acts) if hidden else z


class SSLModel(nn.Module):
    """Encoder f and projector g (None for depth 0: then z = h); `forward(x)` returns (h, z). BYOL's online
    predictor q (on z) is `predictor`, None for the other methods; no measurement reads it."""

    def __init__(self, encoder: nn.Module, projector: Projector | None, predictor: nn.Module | None = None):
        super().__init__()
        self.encoder = encoder
        self.projector = projector
        self.predictor = predictor

    def forward(self, x: torch.Tensor):
        h = self.encoder(x)
        return h, (h if self.projector is None else self.projector(h))


def encoder_dim(encoder: nn.Module) -> int:
    with torch.no_grad():
        was_training = encoder.training
        encoder.eval()
        d = encoder(torch.zeros(1, 3, 32, 32)).shape[1]
        encoder.train(was_training)
    return d


def build_model(encoder: str, encoder_width: int, projector_width: int, projector_depth: int,
                projector_out: int, predictor: bool = False) -> SSLModel:
    """The encoder and, unless `projector_depth` is 0, a projector (depth 0: no module; the loss acts on h);
    with `predictor`, BYOL's predictor: a 2-layer MLP (hidden width `projector_width`, Linear-BN-ReLU-Linear)
    from z back to z's dimension (Grill et al. 2020, Sec. 3.3)."""
    if projector_depth < 0:
        raise ValueError(f"projector depth must be >= 0 (0 = no projector), got {projector_depth}")
    enc = build_encoder(encoder, encoder_width)
    d = encoder_dim(enc)
    projector = Projector(d, projector_width, projector_depth, projector_out) if projector_depth > 0 else None
    out = projector_out if projector_depth > 0 else d
    return SSLModel(enc, projector, Projector(out, projector_width, 2, out) if predictor else None)
