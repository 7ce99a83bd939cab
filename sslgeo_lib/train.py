"""SimCLR training of one RunConfig: seeded, resumable, bf16 + channels_last where the hardware has them.

Every random draw of epoch e comes from a generator seeded by (seed, e), and a checkpoint is written
atomically after every epoch, so a run killed at any point resumes to the same weights it would have had.
"""
from __future__ import annotations

import math
import pickle
import platform
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from sslgeo_lib.augment import augment
from sslgeo_lib.config import RunConfig
from sslgeo_lib.data import class_balanced_subset, load_dataset
from sslgeo_lib.losses import nt_xent
from sslgeo_lib.models import SSLModel, build_model

MONITOR_BANK = 2000  # training images in the kNN bank of the training-curve monitor
MONITOR_QUERIES = 1000  # test images it classifies


@dataclass
class TrainResult:
    model: SSLModel
    metrics: dict
    provenance: dict


def set_seed(seed: int) -> None:
    """Seed torch and numpy (the one place seeds are set globally)."""
    torch.manual_seed(seed)
    np.random.seed(seed)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def cpu_has_bf16() -> bool:
    """True when the CPU has native bf16 arithmetic (AVX-512 BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """bf16 when asked for or ('auto') when the device supports it natively; None means fp32."""
    if precision == "fp32":
        return None
    native = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_bf16()
    if precision == "bf16" or native:
        return torch.bfloat16
    return None


def new_model(cfg: RunConfig) -> SSLModel:
    set_seed(cfg.seed)
    return build_model(cfg.encoder, cfg.encoder_width, cfg.projector_width, cfg.projector_depth,
                       cfg.projector_out)


def lr_at(cfg: RunConfig, step: int, total: int) -> float:
    """SGD learning rate: linear scaling with batch size, cosine decay to 0 over `total` steps, no warm-up."""
    return cfg.lr * cfg.batch_size / 256 * 0.5 * (1 + math.cos(math.pi * step / total))


def _epoch_generator(cfg: RunConfig, epoch: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(cfg.seed * 1_000_003 + epoch)


def training_images(cfg: RunConfig) -> np.ndarray:
    data = load_dataset(cfg.dataset)
    return data.x_train[class_balanced_subset(data.y_train, cfg.n_train, cfg.subset_seed)]


def train_step(model, opt, x_u8, cfg, gen, dtype, channels_last) -> torch.Tensor:
    """One SimCLR step on a uint8 batch (B, 3, H, W); returns the loss (a 0-d tensor, no host sync)."""
    x = x_u8.float().div_(255)
    v1, _ = augment(x, cfg.strength, gen)
    v2, _ = augment(x, cfg.strength, gen)
    views = torch.cat([v1, v2])  # (2B, 3, H, W)
    if channels_last:
        views = views.contiguous(memory_format=torch.channels_last)
    with torch.autocast(views.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        _, z = model(views)
    loss = nt_xent(z[: len(x)], z[len(x):], cfg.temperature)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


def monitor_accuracy(model: SSLModel, cfg: RunConfig, device) -> float:
    """kNN (k = 20, cosine) accuracy of h on MONITOR_QUERIES test images against MONITOR_BANK train images."""
    from sslgeo_lib.embed import encode
    from sslgeo_lib.probes import knn_accuracy

    data = load_dataset(cfg.dataset)
    bank = class_balanced_subset(data.y_train, min(MONITOR_BANK, cfg.n_train or MONITOR_BANK), cfg.subset_seed)
    queries = class_balanced_subset(data.y_test, MONITOR_QUERIES, 0)
    h_bank = encode(model.encoder, data.x_train[bank], device=device)
    h_query = encode(model.encoder, data.x_test[queries], device=device)
    model.train()
    return knn_accuracy(h_bank, data.y_train[bank], h_query, data.y_test[queries])


def _load_checkpoint(path: Path, model, opt):
    """(next epoch, metrics so far) from a checkpoint; (0, empty) when there is none or it is unreadable."""
    if not path.is_file():
        return 0, _empty_metrics()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        return state["epoch"], state["metrics"]
    except (RuntimeError, KeyError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        warnings.warn(f"checkpoint {path} is unreadable ({type(exc).__name__}); training from the start",
                      stacklevel=3)
        return 0, _empty_metrics()


def _save_checkpoint(path: Path, model, opt, epoch: int, metrics: dict) -> None:
    from sslgeo_lib.store import atomic_write

    state = {"model": model.state_dict(), "opt": opt.state_dict(), "epoch": epoch, "metrics": metrics}
    atomic_write(path, lambda f: torch.save(state, f))


def train(cfg: RunConfig, workdir: Path, progress: bool = True, device=None,
          max_epochs: int | None = None) -> TrainResult:
    """Train `cfg`, checkpointing into `workdir` every epoch and resuming from its checkpoint.

    `max_epochs` stops after that many epochs in total (the checkpoint stays; a later call resumes).
    """
    device = torch.device(device) if device is not None else default_device()
    dtype = autocast_dtype(device, cfg.precision)
    channels_last = dtype is not None
    x_all = torch.from_numpy(training_images(cfg)).to(device)  # uint8 (N, 3, 32, 32), resident
    steps_per_epoch = len(x_all) // cfg.batch_size
    total = steps_per_epoch * cfg.epochs
    model = new_model(cfg).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    ckpt = Path(workdir) / "checkpoint.pt"
    start, metrics = _load_checkpoint(ckpt, model, opt)
    stop = cfg.epochs if max_epochs is None else min(cfg.epochs, max_epochs)
    bar = tqdm(total=total, initial=start * steps_per_epoch, disable=not progress, unit="step",
               desc=f"s={cfg.strength:g} seed={cfg.seed}", dynamic_ncols=True)
    model.train()
    for epoch in range(start, stop):
        gen = _epoch_generator(cfg, epoch, device)
        order = torch.randperm(len(x_all), generator=gen, device=device)
        loss_sum, t0 = torch.zeros((), device=device), time.perf_counter()
        for i in range(steps_per_epoch):
            for group in opt.param_groups:
                group["lr"] = lr_at(cfg, epoch * steps_per_epoch + i, total)
            batch = x_all[order[i * cfg.batch_size:(i + 1) * cfg.batch_size]]
            loss_sum += train_step(model, opt, batch, cfg, gen, dtype, channels_last)
            bar.update()
        loss = loss_sum.item() / steps_per_epoch  # one host sync per epoch
        seconds = time.perf_counter() - t0
        metrics["epoch"].append(epoch + 1)
        metrics["loss"].append(loss)
        metrics["epoch_seconds"].append(seconds)
        bar.set_postfix(loss=f"{loss:.3f}", img_s=f"{steps_per_epoch * cfg.batch_size / seconds:,.0f}")
        if epoch + 1 == cfg.epochs or (cfg.monitor_every and (epoch + 1) % cfg.monitor_every == 0):
            metrics["knn_epoch"].append(epoch + 1)
            metrics["knn_acc"].append(monitor_accuracy(model, cfg, device))
        _save_checkpoint(ckpt, model, opt, epoch + 1, metrics)
    bar.close()
    train_seconds = sum(metrics["epoch_seconds"])
    metrics["images_per_s"] = steps_per_epoch * cfg.batch_size * len(metrics["epoch"]) / max(train_seconds, 1e-9)
    metrics["train_seconds"] = train_seconds
    return TrainResult(model.eval(), metrics, provenance(device, dtype, channels_last))


def _empty_metrics() -> dict:
    return {"epoch": [], "loss": [], "epoch_seconds": [], "knn_epoch": [], "knn_acc": []}


def provenance(device: torch.device, dtype, channels_last: bool) -> dict:
    """Where and with what a run was made: git SHA, package versions, device, numeric settings."""
    from importlib.metadata import PackageNotFoundError, version

    def ver(pkg):
        try:
            return version(pkg)
        except PackageNotFoundError:
            return None

    repo = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                             timeout=10).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "sslgeo_lib"], cwd=repo,
                                    capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        sha, dirty = None, None
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    return {"git_sha": sha, "git_dirty": dirty, "python": platform.python_version(),
            "packages": {p: ver(p) for p in ("torch", "torchvision", "numpy", "scikit-learn", "safetensors")},
            "device": str(device), "device_name": name, "precision": "bf16" if dtype else "fp32",
            "channels_last": channels_last, "threads": torch.get_num_threads(),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
