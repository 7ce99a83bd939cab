"""Feature extraction: h, every projector hidden layer, and z, for clean images and augmented views.

All extraction is batched, no-grad, in fp32 (evaluation features are not rounded to bf16; on a GPU, cuDNN without
TF32 and with deterministic algorithms: `exact_fp32`) with channels_last inputs, in eval mode, on any device;
`embed` and `embed_views` fold each BatchNorm into the convolution before it (the same function in eval mode, to
float rounding: 1.2-1.4x faster on the CPU). `clean_features` and `view_features` compute on the machine's training
device (the GPU when there is one: `feature_device`) and cache their arrays in the run's store entry, keyed by that
device's type (a GPU draws other views and rounds otherwise).
Layer names: "h" (encoder), "hidden1" .. "hidden{depth-1}" (projector hidden layers, after ReLU), "z"; the cached
features also hold "z0" = g0(h), the architecture baseline of rule v3 (`initial_projector`).
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
from torch.fx.experimental.optimization import fuse

from sslgeo_lib.data import load_dataset
from sslgeo_lib.training.augment import PARAM_NAMES, augment
from sslgeo_lib.training.loop import default_device, new_model
from sslgeo_lib.training.subset import class_balanced_subset

BATCH = 1000  # images per forward pass


def feature_device(device=None) -> torch.device:
    """Where cached features are computed: `device` when given, else where this machine trains (the GPU if any)."""
    return default_device() if device is None else torch.device(device)


def exact_fp32():
    """fp32 convolutions on a GPU as on a CPU: cuDNN without TF32 (which rounds inputs to 10 mantissa bits), with
    deterministic algorithms and no autotuning (the same features on every call); no effect on a CPU."""
    return torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True, allow_tf32=False)


def image_batches(x_u8: np.ndarray, device):
    for i in range(0, len(x_u8), BATCH):
        yield torch.from_numpy(x_u8[i:i + BATCH]).to(device).float().div_(255)


def _fast(x: torch.Tensor) -> torch.Tensor:
    """The batch in channels_last memory order: convolutions run about 1.6-1.9x faster on the CPU in fp32 for the
    same arithmetic. The model is left as it is (the training monitor shares the model being trained)."""
    return x.contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def encode(encoder: torch.nn.Module, x_u8: np.ndarray, device="cpu") -> np.ndarray:
    """h = f(x) for uint8 images (N, 3, H, W): float32 (N, D)."""
    encoder.eval()
    return np.concatenate([encoder(_fast(xb)).float().cpu().numpy() for xb in image_batches(x_u8, device)])


def for_inference(model):
    """The model in eval mode with each conv + BatchNorm pair of its encoder folded into one convolution (torch.fx);
    the projector is shared. The model itself is not changed."""
    model.eval()
    return SimpleNamespace(encoder=fuse(model.encoder), projector=model.projector)


@torch.no_grad()
def layers(model, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """All layers of a float batch: {"h": (B, D), "hidden1": (B, w), ..., "z": (B, m)}; z is h itself for a
    model without a projector (depth 0)."""
    h = model.encoder(_fast(x))
    if model.projector is None:
        return {"h": h, "z": h}
    z, hidden = model.projector(h, hidden=True)
    return {"h": h, **{f"hidden{i + 1}": a for i, a in enumerate(hidden)}, "z": z}


@torch.no_grad()
def embed(model, x_u8: np.ndarray, device="cpu") -> dict[str, np.ndarray]:
    """Every layer for uint8 images (N, 3, H, W): {layer: float32 (N, dim)}."""
    model = for_inference(model)
    parts = [layers(model, xb) for xb in image_batches(x_u8, device)]
    return {k: torch.cat([p[k] for p in parts]).float().cpu().numpy() for k in parts[0]}


@torch.no_grad()
def embed_views(model, x_u8: np.ndarray, strength: float, n_views: int, seed: int = 0, device="cpu",
                keep=("h", "z"), family: str = "all") -> dict[str, np.ndarray]:
    """`n_views` augmented views of each image at `strength` (of augmentation `family`).

    Returns {layer: (N, K, dim) for layer in keep} plus {"param_<name>": (N, K)} for every drawn
    augmentation parameter (PARAM_NAMES). Views are drawn from a generator seeded by `seed`.
    """
    model = for_inference(model)
    gen = torch.Generator(device=device).manual_seed(seed)
    out = {k: [] for k in keep} | {f"param_{p}": [] for p in PARAM_NAMES}
    for xb in image_batches(x_u8, device):
        per_view = {k: [] for k in out}
        for _ in range(n_views):
            views, params = augment(xb, strength, gen, family)
            feats = layers(model, views)
            for k in keep:
                per_view[k].append(feats[k].float().cpu())
            for p in PARAM_NAMES:
                per_view[f"param_{p}"].append(params[p].cpu())
        for k, v in per_view.items():
            out[k].append(torch.stack(v, 1))  # (B, K, ...)
    return {k: torch.cat(v).numpy() for k, v in out.items()}


@torch.no_grad()
def reestimate_batchnorm(module: torch.nn.Module, batches) -> torch.nn.Module:
    """`module` with every BatchNorm's running statistics replaced by their average over `batches` (float tensors
    it takes as input; a forward pass in training mode with cumulative averaging, no weight changes). Returned in
    eval mode."""
    norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: the mean over the batches seen
    module.train()
    for xb in batches:
        module(xb)
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    return module.eval()


G0_IMAGES = 10_000  # training images whose trained h re-estimate the BatchNorm statistics of g0


def initial_projector(run, device=None):
    """g0, the architecture baseline of rule v3: the run's projector at initialisation (rebuilt from its seed by
    `new_model`), its BatchNorm statistics re-estimated on the run's *trained* h of G0_IMAGES of its training
    images (class-balanced, drawn by its seed from its training subset); in eval mode. None for a run without a
    projector. Its statistics are cached with the run, keyed by the device that estimated them."""

    device = feature_device(device)
    g0 = new_model(run.config).projector
    if g0 is None:
        return None

    def compute():
        data = load_dataset(run.config.dataset)
        own = split_indices(run.config, "train", data.y_train, 0)
        if len(own) > G0_IMAGES:
            own = own[class_balanced_subset(data.y_train[own], G0_IMAGES, run.config.seed)]
        with exact_fp32():
            h = torch.from_numpy(encode(run.model(device).encoder, data.x_train[own], device))
        reestimate_batchnorm(g0, (h[i:i + BATCH] for i in range(0, len(h), BATCH)))
        return {k: v.cpu().numpy() for k, v in g0.state_dict().items()}

    state = run.cached("g0", {"images": G0_IMAGES, "device": device.type}, compute, FEATURE_CODE)
    g0.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
    return g0.to(device).eval()


@torch.no_grad()
def project(projector, h: np.ndarray, device=None) -> np.ndarray:
    """projector(h) for float32 features of any leading shape (..., D), in batches, on `device` (default: where the
    projector is); h itself without a projector."""
    if projector is None:
        return h.copy()
    device = device or next(projector.parameters()).device
    flat = torch.from_numpy(h.reshape(-1, h.shape[-1]))
    out = torch.cat([projector(flat[i:i + BATCH].to(device)).float().cpu() for i in range(0, len(flat), BATCH)])
    return out.numpy().reshape(*h.shape[:-1], -1)


FEATURE_CODE = ("embed.py",)  # what keys the feature caches, besides the run id (which covers the model code)


def eval_indices(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """An evaluation subset of a split: class-balanced, `n` images (0 = all), drawn by `seed` (a run's own
    seed, so the interval over seeds covers the evaluation draw too)."""
    return class_balanced_subset(labels, n, seed)


def clean_features(run, split: str, n: int, device=None) -> dict[str, np.ndarray]:
    """Cached `embed` of a split's evaluation subset of `n` images drawn by the run's seed ("train" with n = 0:
    the run's own training subset), plus "z0" (g0(h), `initial_projector`), "y" (labels) and "index" (positions
    in the split); computed on `feature_device(device)`."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    seed, device = run.config.seed, feature_device(device)

    def compute():
        data = load_dataset(run.config.dataset)
        x, y = (data.x_train, data.y_train) if split == "train" else (data.x_test, data.y_test)
        idx = split_indices(run.config, split, y, n)
        with exact_fp32():
            out = embed(run.model(device), x[idx], device)
            z0 = project(initial_projector(run, device), out["h"], device)
        return {**out, "z0": z0, "y": y[idx], "index": idx}

    return run.cached(f"clean-{split}", {"n": n, "seed": seed, "device": device.type}, compute, FEATURE_CODE)


def split_indices(cfg, split: str, y: np.ndarray, n: int) -> np.ndarray:
    """The evaluation images of a split for the run `cfg`: `n` drawn class-balanced by its seed, or with
    n = 0 all of them ("test") or its own training subset ("train")."""
    if split == "train" and n == 0:
        return class_balanced_subset(y, cfg.n_train, cfg.subset_seed)
    return eval_indices(y, n, cfg.seed)


def view_features(run, n: int, strength: float, n_views: int, device=None,
                  keep=("h", "z"), family: str = "all") -> dict[str, np.ndarray]:
    """Cached `embed_views` of the test evaluation subset of size `n` (the images `clean_features(run, "test",
    n)` holds), views drawn from a generator seeded by the run's seed, of augmentation `family` (the full
    policy by default; a run's own family for views "as in training"); with "h" kept, also "z0" = g0(h). Computed on
    `feature_device(device)`, whose generator draws the views."""
    seed, device = run.config.seed, feature_device(device)

    def compute():
        data = load_dataset(run.config.dataset)
        idx = eval_indices(data.y_test, n, seed)
        with exact_fp32():
            out = embed_views(run.model(device), data.x_test[idx], strength, n_views, seed, device, keep, family)
            if "h" in keep:
                out["z0"] = project(initial_projector(run, device), out["h"], device)
        return {**out, "y": data.y_test[idx], "index": idx}

    settings = {"n": n, "strength": float(strength), "n_views": n_views, "seed": seed, "keep": list(keep),
                "family": family, "device": device.type}
    return run.cached("views", settings, compute, FEATURE_CODE)
