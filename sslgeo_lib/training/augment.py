"""The SimCLR augmentation policy with one strength knob `s`, batched, on any device.

Policy at strength s (CLAIMS.md; Chen et al. 2020, App. A):
  random-resized-crop with area fraction in [a(s), 1], a(s) = max(0.08, 1 - 0.92 s), log aspect ratio
  uniform in [-log(4/3) min(s, 1), +log(4/3) min(s, 1)], resized back to the input size (bilinear);
  horizontal flip with p = 0.5 min(s, 1);
  colour jitter with p = 0.8: brightness, contrast, saturation factors in [max(0, 1 - 0.8 s), 1 + 0.8 s],
  hue shift in [-min(0.2 s, 0.5), min(0.2 s, 0.5)], applied in that fixed order;
  grayscale with p = 0.2 min(s, 1).
s = 0 is the identity, bit for bit; every range and probability is monotone in s, and at s >= 1 the
geometric part and the probabilities are SimCLR's (knob v2 of CLAIMS.md).

Families (B2): "all" is the policy above; "crop" (resized crop: area and aspect), "color" (colour jitter and
grayscale) and "flip" scale one family with s and leave the others off, exactly (the ops of a family that is off
are skipped, so its images are untouched bit for bit).

Every op works on a whole batch at once with per-sample parameters (one `grid_sample` does crop, resize
and flip together); the ops follow torchvision's functional definitions on float images in [0, 1].
`augment` returns the views together with every drawn parameter (for claim C5).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

PARAM_NAMES = ("area", "center_x", "center_y", "aspect", "flip",
               "jitter", "brightness", "contrast", "saturation", "hue", "grayscale")
# Parameters that are 0/1 flags (classification targets in claim C5); the rest are continuous.
BINARY_PARAMS = ("flip", "jitter", "grayscale")

_GRAY = (0.2989, 0.587, 0.114)  # ITU-R 601 luma weights, as torchvision's rgb_to_grayscale


FAMILIES = {"all": None, "crop": ("min_area", "log_aspect"), "color": ("jitter_p", "bcs", "hue", "gray_p"),
            "flip": ("flip_p",)}  # each family: the policy entries that s scales (None: every entry)


def policy(strength: float, family: str = "all") -> dict[str, float]:
    """The policy's ranges and probabilities at `strength` for one family (a dict of floats): the family's
    entries at s, the others at s = 0 (off)."""
    s = float(strength)
    if not math.isfinite(s) or s < 0:
        raise ValueError(f"strength must be a finite number >= 0, got {strength!r}")
    if family not in FAMILIES:
        raise ValueError(f"unknown augmentation family {family!r}; accepted: {', '.join(FAMILIES)}")
    full = _policy(s)
    if FAMILIES[family] is None:
        return full
    off = _policy(0.0)
    return {k: full[k] if k in FAMILIES[family] else off[k] for k in full}


def _policy(s: float) -> dict[str, float]:
    return {
        "min_area": max(0.08, 1.0 - 0.92 * s),
        "log_aspect": math.log(4 / 3) * min(s, 1.0),  # aspect ratio in [3/4, 4/3] at s >= 1, log-uniform
        "flip_p": 0.5 * min(s, 1.0),
        "jitter_p": 0.8 if s > 0 else 0.0,
        "bcs": 0.8 * s,  # brightness/contrast/saturation magnitude
        "hue": min(0.2 * s, 0.5),
        "gray_p": 0.2 * min(s, 1.0),
    }


def _uniform(n, lo, hi, g, device):
    return lo + (hi - lo) * torch.rand(n, generator=g, device=device)


def _bernoulli(n, p, g, device):
    return (torch.rand(n, generator=g, device=device) < p).float()


def sample_params(n: int, strength: float, generator: torch.Generator | None = None,
                  device: torch.device | str = "cpu", family: str = "all") -> dict[str, torch.Tensor]:
    """Draw the parameters of `n` views at `strength`; each value is a float tensor of shape (n,).

    Crop boxes are in fractions of the image side; centre (0.5, 0.5) and area 1 is the whole image.
    Views without jitter carry the identity factors (1, 1, 1, 0) and `jitter = 0`.
    """
    p, g = policy(strength, family), generator
    area = _uniform(n, p["min_area"], 1.0, g, device)
    log_r = _uniform(n, -p["log_aspect"], p["log_aspect"], g, device)
    aspect = torch.exp(log_r)
    w, h = torch.sqrt(area * aspect), torch.sqrt(area / aspect)
    too_big = (w > 1) | (h > 1)  # box does not fit: fall back to a square of the same area
    w, h = torch.where(too_big, area.sqrt(), w), torch.where(too_big, area.sqrt(), h)
    aspect = w / h
    cx = w / 2 + (1 - w) * torch.rand(n, generator=g, device=device)
    cy = h / 2 + (1 - h) * torch.rand(n, generator=g, device=device)
    jitter = _bernoulli(n, p["jitter_p"], g, device)
    lo, hi = max(0.0, 1 - p["bcs"]), 1 + p["bcs"]
    factors = {k: _uniform(n, lo, hi, g, device) for k in ("brightness", "contrast", "saturation")}
    factors["hue"] = _uniform(n, -p["hue"], p["hue"], g, device)
    identity = {"brightness": 1.0, "contrast": 1.0, "saturation": 1.0, "hue": 0.0}
    factors = {k: torch.where(jitter > 0, v, torch.full_like(v, identity[k])) for k, v in factors.items()}
    return {"area": w * h, "center_x": cx, "center_y": cy, "aspect": aspect,
            "flip": _bernoulli(n, p["flip_p"], g, device), "jitter": jitter, **factors,
            "grayscale": _bernoulli(n, p["gray_p"], g, device)}


def crop_flip(x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """Resized crop and horizontal flip of a batch (B, C, H, W) in one bilinear `grid_sample`."""
    w = torch.sqrt(params["area"] * params["aspect"])
    h = torch.sqrt(params["area"] / params["aspect"])
    sign = 1 - 2 * params["flip"]
    theta = torch.zeros(x.shape[0], 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = w * sign
    theta[:, 0, 2] = 2 * params["center_x"] - 1
    theta[:, 1, 1] = h
    theta[:, 1, 2] = 2 * params["center_y"] - 1
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _gray(x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, 1, H, W)
    r, g, b = x.unbind(1)
    return (_GRAY[0] * r + _GRAY[1] * g + _GRAY[2] * b).unsqueeze(1)


def _blend(a, b, factor):  # factor * a + (1 - factor) * b, clamped to [0, 1]
    f = factor.view(-1, 1, 1, 1)
    return (f * a + (1 - f) * b).clamp_(0, 1)


def _shift_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate hue by `shift` (fraction of a turn) through HSV, as torchvision's adjust_hue.

    Saturation and value are unchanged, so with V = max, delta = max - min and the hue h6 in [0, 6) read off the
    largest channel c as 2c + (next - previous) / delta, each output channel n is
    V - delta * clamp(min(k, 4 - k), 0, 1) with k = (n' + h6) mod 6, n' = 5, 3, 1 for R, G, B.
    """
    maxc, argmax = x.max(1, keepdim=True)  # (B, 1, H, W)
    delta = maxc - x.min(1, keepdim=True).values
    turn = x.gather(1, (argmax + 1) % 3) - x.gather(1, (argmax + 2) % 3)
    h6 = 2 * argmax + turn / torch.where(delta > 0, delta, torch.ones_like(delta)) + 6 * shift.view(-1, 1, 1, 1)
    k = torch.remainder(h6 + torch.tensor([5.0, 3.0, 1.0], device=x.device, dtype=x.dtype).view(1, 3, 1, 1), 6)
    return maxc - delta * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def color(x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """Colour jitter (brightness, contrast, saturation, hue, in that order) then random grayscale."""
    x = (x * params["brightness"].view(-1, 1, 1, 1)).clamp_(0, 1)
    x = _blend(x, _gray(x).mean((2, 3), keepdim=True), params["contrast"])
    x = _blend(x, _gray(x), params["saturation"])
    hued = (params["hue"] != 0).view(-1, 1, 1, 1)  # no .any(): a host sync on CUDA
    x = torch.where(hued, _shift_hue(x, params["hue"]), x)
    gray = params["grayscale"].view(-1, 1, 1, 1) > 0
    return torch.where(gray, _gray(x).expand_as(x), x)


def apply(x: torch.Tensor, params: dict[str, torch.Tensor], family: str = "all") -> torch.Tensor:
    """Apply drawn parameters to a float batch (B, 3, H, W) in [0, 1]; the ops of families that are off are
    skipped (a flip alone is an exact mirror, not a resampling)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown augmentation family {family!r}; accepted: {', '.join(FAMILIES)}")
    if family == "flip":
        return torch.where(params["flip"].view(-1, 1, 1, 1) > 0, x.flip(-1), x)
    if family in ("all", "crop"):
        x = crop_flip(x, params)
    return color(x, params) if family in ("all", "color") else x


def augment(x: torch.Tensor, strength: float, generator: torch.Generator | None = None, family: str = "all"):
    """Draw one view per image at `strength` (of one augmentation family, see FAMILIES): returns (views
    (B, 3, H, W), params dict of (B,) tensors).

    `x` is float in [0, 1] on any device; parameters are drawn on `x.device` from `generator`
    (which must live on that device); the same draws whatever the family. strength 0 returns an exact copy and
    identity parameters.
    """
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"augment expects a batch of RGB images (B, 3, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"augment expects float images in [0, 1], got dtype {x.dtype}")
    params = sample_params(x.shape[0], strength, generator, x.device, family)
    if strength == 0:
        return x.clone(), params
    return apply(x, params, family), params
