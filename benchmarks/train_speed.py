"""Training throughput: our step against a reference pipeline, in the same run, with a time breakdown.

    python benchmarks/train_speed.py                     # the cpu preset's encoder, batch 256
    python benchmarks/train_speed.py --preset gpu        # ResNet-18 on CUDA

Ours: uint8 images resident on the device, batched augmentation (one grid_sample for crop+flip, batched
colour ops), bf16 autocast + channels_last where the hardware supports them. Reference: the same policy as
per-image torchvision transforms in a DataLoader (workers = CPU cores), fp32, the same model and batch.
Throughput is in source images per second (two views each), steady state after warm-up. The breakdown
times each part of our step separately (synchronised on CUDA); the variants show what each choice buys.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
import torchvision.transforms.v2 as T

from sslgeo_lib.presets import make_preset
from sslgeo_lib.training.augment import augment, policy
from sslgeo_lib.training.loop import autocast_dtype, default_device, new_model, train_step, training_images
from sslgeo_lib.training.losses import nt_xent


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, steps, device, warmup=3):
    for _ in range(warmup):
        fn()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / steps


def our_pipeline(cfg, x_u8, device, dtype, channels_last, compile_model=False):
    model = new_model(cfg).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    gen = torch.Generator(device=device).manual_seed(0)
    n = len(x_u8)
    net = torch.compile(model) if compile_model else model

    def step():
        idx = torch.randint(0, n, (cfg.batch_size,), device=device, generator=gen)
        train_step(net, opt, x_u8[idx], cfg, gen, dtype, channels_last)

    return step, model, opt, gen


def reference_pipeline(cfg, images: np.ndarray, device):
    """Per-image torchvision v2 transforms of the same policy, two views, in a DataLoader; fp32 model."""
    p = policy(cfg.strength)
    tf = T.Compose([
        T.ToImage(), T.ToDtype(torch.float32, scale=True),
        T.RandomResizedCrop(32, scale=(p["min_area"], 1.0), antialias=True),
        T.RandomHorizontalFlip(p["flip_p"]),
        T.RandomApply([T.ColorJitter(p["bcs"], p["bcs"], p["bcs"], p["hue"])], p=p["jitter_p"]),
        T.RandomGrayscale(p["gray_p"]),
    ])

    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            img = torch.from_numpy(images[i])
            return tf(img), tf(img)

    workers = min(os.cpu_count() or 1, 8)
    loader = torch.utils.data.DataLoader(Pairs(), batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                                         num_workers=workers, persistent_workers=True, prefetch_factor=4)
    model = new_model(cfg).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    batches = iter(loader)

    def step():
        nonlocal batches
        try:
            v1, v2 = next(batches)
        except StopIteration:
            batches = iter(loader)
            v1, v2 = next(batches)
        _, z = model(torch.cat([v1, v2]).to(device, non_blocking=True))
        loss = nt_xent(z[: len(v1)], z[len(v1):], cfg.temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, workers


def breakdown(cfg, x_u8, device, dtype, channels_last, steps):
    """Seconds per step of each part of our step, timed separately."""
    _, model, opt, gen = our_pipeline(cfg, x_u8, device, dtype, channels_last)
    b = cfg.batch_size
    idx = torch.randint(0, len(x_u8), (b,), device=device, generator=gen)
    x = x_u8[idx].float().div_(255)
    views = torch.cat([augment(x, cfg.strength, gen)[0], augment(x, cfg.strength, gen)[0]])
    if channels_last:
        views = views.contiguous(memory_format=torch.channels_last)
    ac = dict(device_type=device.type, dtype=dtype or torch.float32, enabled=dtype is not None)

    def forward():
        with torch.autocast(**ac):
            _, z = model(views)
        return nt_xent(z[:b], z[b:], cfg.temperature)

    def backward():
        opt.zero_grad(set_to_none=True)
        forward().backward()

    t_fwd = timed(forward, steps, device)
    return {
        "data movement (index, uint8 -> float)": timed(lambda: x_u8[torch.randint(0, len(x_u8), (b,), device=device,
                                                                                   generator=gen)].float().div_(255),
                                                       steps, device),
        "augmentation (2 views)": timed(lambda: (augment(x, cfg.strength, gen), augment(x, cfg.strength, gen)),
                                        steps, device),
        "forward + loss": t_fwd,
        "backward": timed(backward, steps, device) - t_fwd,
        "optimizer step": timed(opt.step, steps, device),
    }


def kornia_augmentation_seconds(cfg, x_u8, device, steps):
    """The same policy with kornia.augmentation (two views), seconds per step."""
    import kornia.augmentation as K

    p = policy(cfg.strength)
    aug = torch.nn.Sequential(
        K.RandomResizedCrop((32, 32), scale=(p["min_area"], 1.0)),
        K.RandomHorizontalFlip(p=p["flip_p"]),
        K.ColorJitter(p["bcs"], p["bcs"], p["bcs"], p["hue"], p=p["jitter_p"]),
        K.RandomGrayscale(p=p["gray_p"]),
    ).to(device)
    x = x_u8[: cfg.batch_size].float().div_(255)
    return timed(lambda: (aug(x), aug(x)), steps, device)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="cpu", help="whose encoder and batch size (default: cpu)")
    ap.add_argument("--strength", type=float, default=0.5)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    ap.add_argument("--no-reference", action="store_true", help="skip the reference pipeline")
    ap.add_argument("--compile", action="store_true", help="also time our step with torch.compile")
    args = ap.parse_args()
    cfg = make_preset(args.preset).base.replace(strength=args.strength)
    device = default_device()
    dtype = autocast_dtype(device, cfg.precision)
    channels_last = dtype is not None
    images = training_images(cfg.replace(n_train=min(cfg.n_train or 10_000, 10_000)))
    x_u8 = torch.from_numpy(images).to(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {name}, {torch.get_num_threads()} threads; encoder {cfg.encoder} (width {cfg.encoder_width}); "
          f"batch {cfg.batch_size}; strength {cfg.strength}; precision {'bf16' if dtype else 'fp32'}, "
          f"channels_last {channels_last}")
    rows = {}
    step = our_pipeline(cfg, x_u8, device, dtype, channels_last)[0]
    rows["ours"] = cfg.batch_size / timed(step, args.steps, device)
    if dtype is not None:
        rows["ours, fp32 (no bf16, no channels_last)"] = cfg.batch_size / timed(
            our_pipeline(cfg, x_u8, device, None, False)[0], args.steps, device)
        rows["ours, bf16 without channels_last"] = cfg.batch_size / timed(
            our_pipeline(cfg, x_u8, device, dtype, False)[0], args.steps, device)
    if args.compile:
        rows["ours + torch.compile"] = cfg.batch_size / timed(
            our_pipeline(cfg, x_u8, device, dtype, channels_last, compile_model=True)[0], args.steps, device,
            warmup=5)
    if not args.no_reference:
        ref, workers = reference_pipeline(cfg, images, device)
        rows[f"reference (torchvision per image, DataLoader x{workers}, fp32)"] = cfg.batch_size / timed(
            ref, args.steps, device, warmup=5)
    width = max(map(len, rows))
    print("\nthroughput (source images/s, two views each)")
    for k, v in rows.items():
        print(f"  {k:<{width}}  {v:9,.0f}")
    ref_key = next((k for k in rows if k.startswith("reference")), None)
    if ref_key:
        print(f"  {'speed-up of ours over the reference':<{width}}  {rows['ours'] / rows[ref_key]:9.2f}x")
    parts = breakdown(cfg, x_u8, device, dtype, channels_last, args.steps)
    total = sum(parts.values())
    print("\nwhere the time of one step goes (each part timed alone)")
    for k, v in parts.items():
        print(f"  {k:<40} {v * 1e3:8.2f} ms  {100 * v / total:5.1f}%")
    try:
        kornia_ms = f"{kornia_augmentation_seconds(cfg, x_u8, device, args.steps) * 1e3:8.2f} ms"
    except ImportError:
        kornia_ms = "(kornia not installed)"
    print(f"  {'kornia.augmentation instead (2 views)':<40} {kornia_ms}")


if __name__ == "__main__":
    main()
