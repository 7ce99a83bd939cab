"""Training of one RunConfig (SimCLR, VICReg, Barlow Twins or BYOL): seeded, resumable, bf16 + channels_last
where the hardware has them.

Every random draw of epoch e comes from a generator seeded by (seed, e), the model is initialised inside a
forked RNG (the caller's global torch/numpy state is left untouched), and a checkpoint is written
atomically after every epoch, so a run killed at any point resumes to the same weights it would have had.
"""
from __future__ import annotations

import copy
import math
import pickle
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from sslgeo_lib.fileio import atomic_write
from sslgeo_lib.training.augment import augment
from sslgeo_lib.training import losses
from sslgeo_lib.training.models import SSLModel, build_model
from sslgeo_lib.training.subset import class_balanced_subset


# Intermediate weights kept with every run (B4: each claim's statistic as training goes on): after these fractions
# of the epochs (rounded, at least epoch 1, distinct, before the last), beside the final weights.
SNAPSHOT_FRACTIONS = (0.25, 0.5)


def snapshot_epochs(cfg) -> list[int]:
    """The epochs after which a run keeps a snapshot of its weights (the final epoch is the run's weights)."""
    return sorted({max(1, round(f * cfg.epochs)) for f in SNAPSHOT_FRACTIONS} - {cfg.epochs})


def snapshot_name(epoch: int) -> str:
    return f"weights-e{epoch}.safetensors"


def cpu_state(model) -> dict[str, torch.Tensor]:
    """The model's tensors, contiguous on the CPU (what safetensors stores)."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def _save_snapshot(path: Path, model) -> None:
    from safetensors.torch import save

    state = cpu_state(model)
    atomic_write(path, lambda f: f.write(save(state)))


# CPU kernels reduce in an order that depends on the intra-op thread count, so weights do too: training always
# uses this many threads (restored afterwards), which makes a run reproducible on any machine with the same build
# and a resume identical to an uninterrupted run. 2 = the cores of the reference machine and of CI.
TRAINING_THREADS = 2


@contextmanager
def training_threads(device: torch.device):
    """Run the block with TRAINING_THREADS intra-op threads on the CPU (GPU kernels do not depend on it)."""
    before = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(TRAINING_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class TrainResult:
    model: SSLModel
    metrics: dict
    device: torch.device
    dtype: torch.dtype | None
    channels_last: bool
    threads: int  # intra-op threads the run trained with


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def cpu_has_bf16() -> bool:
    """True when the CPU has native bf16 arithmetic (AVX-512 BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """bf16 when asked for or ('auto') when the device supports it natively; None means fp32."""
    if precision == "fp32":
        return None
    native = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_bf16()
    if precision == "bf16" or native:
        return torch.bfloat16
    return None


def numerics(cfg, device=None) -> dict:
    """How `cfg` trains on this machine: the device type and the resolved precision. Part of a run's identity:
    the same config trains to other weights in bf16 than in fp32, and on a GPU than on a CPU."""
    device = torch.device(device) if device is not None else default_device()
    return {"device": device.type, "precision": "bf16" if autocast_dtype(device, cfg.precision) else "fp32"}


def new_model(cfg) -> SSLModel:
    """The model of `cfg`, initialised from `cfg.seed` without touching the global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return build_model(cfg.encoder, cfg.encoder_width, cfg.projector_width, cfg.projector_depth,
                           cfg.projector_out, predictor=cfg.method == "byol")


def lr_at(cfg, step: int, total: int) -> float:
    """Learning rate at `step` of `total`: the peak cfg.lr * batch_size / 256 (linear scaling), reached by a linear
    warm-up over the first warmup_epochs / epochs of the steps, then a cosine decay to 0 over the rest."""
    peak = cfg.lr * cfg.batch_size / 256
    warm = total * cfg.warmup_epochs // cfg.epochs
    if step < warm:
        return peak * (step + 1) / warm
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warm) / (total - warm)))


LARS_ETA = 0.02  # LARS's trust coefficient (solo-learn's CIFAR recipes; You et al. 2017 use 0.001 at batch 8k)


class LARS(torch.optim.Optimizer):
    """SGD with momentum in which each parameter tensor's step is scaled by LARS's trust ratio
    eta ||w|| / (||g|| + wd ||w||), capped so that no tensor steps faster than plain SGD would (solo-learn's
    clipped form). Weight decay is added to the gradient first. Groups with adapt=False (BatchNorm parameters and
    biases under decay_scope="weights") take plain momentum-SGD steps."""

    def __init__(self, groups, lr: float, momentum: float = 0.9, eta: float = LARS_ETA):
        super().__init__(groups, {"lr": lr, "momentum": momentum, "eta": eta, "weight_decay": 0.0, "adapt": True})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = p.grad.add(p, alpha=group["weight_decay"]) if group["weight_decay"] else p.grad.clone()
                if group["adapt"]:
                    w_norm, g_norm = p.norm(), p.grad.norm()
                    trust = group["eta"] * w_norm / (g_norm + group["weight_decay"] * w_norm + 1e-12)
                    ok = (w_norm > 0) & (g_norm > 0)
                    d.mul_(torch.where(ok, torch.clamp(trust / group["lr"], max=1.0), torch.ones_like(trust)))
                buf = self.state[p].get("momentum_buffer")
                if buf is None:
                    buf = self.state[p]["momentum_buffer"] = d
                else:
                    buf.mul_(group["momentum"]).add_(d)
                p.add_(buf, alpha=-group["lr"])


def new_optimizer(model, cfg) -> torch.optim.Optimizer:
    """The run's optimiser: momentum SGD or LARS (cfg.optimizer), weight decay on every parameter or, with
    decay_scope="weights", only on conv and linear weight matrices (BatchNorm parameters and biases are neither
    decayed nor LARS-adapted, as in solo-learn's recipes)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.decay_scope == "all":
        groups = [{"params": params, "weight_decay": cfg.weight_decay}]
    else:
        groups = [{"params": [p for p in params if p.ndim > 1], "weight_decay": cfg.weight_decay},
                  {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0, "adapt": False}]
    if cfg.optimizer == "lars":
        return LARS(groups, lr=cfg.lr)
    for g in groups:
        g.pop("adapt", None)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9)


def _epoch_generator(cfg, epoch: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(cfg.seed * 1_000_003 + epoch)


def training_images(cfg) -> np.ndarray:
    """The run's class-balanced training subset, uint8 (N, 3, H, W)."""
    from sslgeo_lib.data import load_dataset

    data = load_dataset(cfg.dataset)
    return data.x_train[class_balanced_subset(data.y_train, cfg.n_train, cfg.subset_seed)]


def pair_loss(cfg, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """The objective of `cfg.method` on the two views' embeddings (BYOL is handled in `train_step`)."""
    if cfg.method == "simclr":
        return losses.nt_xent(z1, z2, cfg.temperature)
    if cfg.method == "vicreg":
        return losses.vicreg(z1, z2)
    if cfg.method == "barlow_twins":
        return losses.barlow_twins(z1, z2)
    raise ValueError(f"method {cfg.method!r} has no pair loss")


def ema_decay(cfg, step: int, total: int) -> float:
    """BYOL's target decay at `step`: tau = 1 - (1 - tau_0) (cos(pi step / total) + 1) / 2, from tau_0 to 1."""
    return 1 - (1 - cfg.ema) * (math.cos(math.pi * step / total) + 1) / 2


def new_target(model: SSLModel) -> SSLModel:
    """BYOL's target network: a copy of the online encoder and projector (no predictor), never trained by
    gradients; it stays in training mode (batch statistics in its BatchNorms), as the online network."""
    target = copy.deepcopy(model)
    target.predictor = None
    return target.requires_grad_(False)


@torch.no_grad()
def ema_update(target: SSLModel, model: SSLModel, tau: float) -> None:
    """target <- tau target + (1 - tau) online, parameter by parameter (encoder and projector)."""
    online = dict(model.named_parameters())
    pairs = [(p, online[n]) for n, p in target.named_parameters()]
    torch._foreach_mul_([p for p, _ in pairs], tau)
    torch._foreach_add_([p for p, _ in pairs], [q.detach() for _, q in pairs], alpha=1 - tau)


def train_step(model, opt, x_u8, cfg, gen, dtype, channels_last, target=None, tau: float | None = None) -> torch.Tensor:
    """One step of `cfg.method` on a uint8 batch (B, 3, H, W); returns the loss (a 0-d tensor, no host sync).
    BYOL (`target` given): the symmetrised regression of each view's prediction onto the target's projection of
    the other view, then the target's moving-average update with decay `tau`."""
    if target is not None and tau is None:
        raise ValueError("a BYOL step needs the target's decay tau (see ema_decay)")
    x = x_u8.float().div_(255)
    v1, _ = augment(x, cfg.strength, gen, cfg.augment_family)
    v2, _ = augment(x, cfg.strength, gen, cfg.augment_family)
    # one forward pass of (2B, 3, H, W), or one per view: BatchNorm's batch statistics shared or per view
    chunks = [v1, v2] if cfg.view_batchnorm == "per_view" else [torch.cat([v1, v2])]
    if channels_last:
        chunks = [v.contiguous(memory_format=torch.channels_last) for v in chunks]
    n = len(x)
    per_chunk = lambda net, inputs: torch.cat([net(v) for v in inputs])  # noqa: E731
    with torch.autocast(x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        z = per_chunk(lambda v: model(v)[1], chunks)
        if target is not None:
            p = per_chunk(model.predictor, z.split(n) if len(chunks) == 2 else [z])
            with torch.no_grad():
                t = per_chunk(lambda v: target(v)[1], chunks)
    if target is not None:
        loss = losses.byol(p[:n], t[n:]) + losses.byol(p[n:], t[:n])
    else:
        loss = pair_loss(cfg, z[:n], z[n:])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if target is not None:
        ema_update(target, model, tau)
    return loss.detach()


def _empty_metrics() -> dict:
    return {"epoch": [], "loss": [], "epoch_seconds": [], "knn_epoch": [], "knn": []}


def _load_checkpoint(path: Path, model, opt, target=None):
    """(next epoch, metrics so far) from a checkpoint; (0, empty) when there is none or it is unreadable."""
    if not path.is_file():
        return 0, _empty_metrics()
    fresh = [copy.deepcopy(m.state_dict()) for m in (model, opt)] + ([copy.deepcopy(target.state_dict())]
                                                                       if target is not None else [])
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        missing = [k for k in ("model", "opt", "epoch", "metrics") + (("target",) if target is not None else ())
                   if k not in state]
        if missing:
            raise KeyError(f"no {', '.join(missing)}")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        if target is not None:
            target.load_state_dict(state["target"])
        return state["epoch"], state["metrics"]
    except (RuntimeError, KeyError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        warnings.warn(f"checkpoint {path} is unreadable ({type(exc).__name__}); training from the start",
                      stacklevel=3)
        for live, init in zip((model, opt, target), fresh):  # nothing half-loaded survives the fallback
            live.load_state_dict(init)
        return 0, _empty_metrics()


def _save_checkpoint(path: Path, model, opt, epoch: int, metrics: dict, target=None) -> None:
    state = {"model": model.state_dict(), "opt": opt.state_dict(), "epoch": epoch, "metrics": metrics}
    if target is not None:
        state["target"] = target.state_dict()
    atomic_write(path, lambda f: torch.save(state, f))


def _monitor_due(cfg, epoch: int) -> bool:
    return epoch == cfg.epochs or bool(cfg.monitor_every and epoch % cfg.monitor_every == 0)


def train(cfg, workdir: Path, progress: bool = True, device=None, max_epochs: int | None = None,
          monitor: Callable | None = None) -> TrainResult:
    """Train `cfg` (see `_train`) with the fixed training thread count."""
    device = torch.device(device) if device is not None else default_device()
    with training_threads(device):
        return _train(cfg, workdir, progress, device, max_epochs, monitor)


def _train(cfg, workdir: Path, progress: bool, device: torch.device, max_epochs: int | None,
           monitor: Callable | None) -> TrainResult:
    """Train `cfg`, checkpointing into `workdir` every epoch and resuming from its checkpoint.

    `monitor(model, device) -> float`, if given, is called after the epochs `cfg.monitor_every` names and the
    last one (its values go to metrics["knn"]; it must not change the model). After each epoch of
    `snapshot_epochs(cfg)` the weights are also saved as `workdir/snapshot_name(epoch)` (before that epoch's
    checkpoint, so a resumed run always has them). `max_epochs` stops after that many epochs in total (the
    checkpoint stays; a later call resumes).
    """
    dtype = autocast_dtype(device, cfg.precision)
    channels_last = dtype is not None
    x_all = torch.from_numpy(training_images(cfg)).to(device)  # uint8 (N, 3, 32, 32), resident
    steps_per_epoch = len(x_all) // cfg.batch_size
    total = steps_per_epoch * cfg.epochs
    model = new_model(cfg).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = new_optimizer(model, cfg)
    target = new_target(model) if cfg.method == "byol" else None
    ckpt = Path(workdir) / "checkpoint.pt"
    start, metrics = _load_checkpoint(ckpt, model, opt, target)
    stop = cfg.epochs if max_epochs is None else min(cfg.epochs, max_epochs)
    bar = tqdm(total=total, initial=start * steps_per_epoch, disable=not progress, unit="step",
               desc=f"s={cfg.strength:g} seed={cfg.seed}", dynamic_ncols=True)
    model.train()
    for epoch in range(start, stop):
        gen = _epoch_generator(cfg, epoch, device)
        order = torch.randperm(len(x_all), generator=gen, device=device)
        loss_sum, t0 = torch.zeros((), device=device), time.perf_counter()
        for i in range(steps_per_epoch):
            step = epoch * steps_per_epoch + i
            for group in opt.param_groups:
                group["lr"] = lr_at(cfg, step, total)
            batch = x_all[order[i * cfg.batch_size:(i + 1) * cfg.batch_size]]
            loss_sum += train_step(model, opt, batch, cfg, gen, dtype, channels_last, target,
                                   ema_decay(cfg, step, total))
            bar.update()
        loss = loss_sum.item() / steps_per_epoch  # one host sync per epoch
        if not math.isfinite(loss):  # stop here: every later epoch would be wasted on NaN weights
            bar.close()
            raise FloatingPointError(f"the training loss was not finite in epoch {epoch + 1}")
        seconds = time.perf_counter() - t0
        metrics["epoch"].append(epoch + 1)
        metrics["loss"].append(loss)
        metrics["epoch_seconds"].append(seconds)
        bar.set_postfix(loss=f"{loss:.3f}", img_s=f"{steps_per_epoch * cfg.batch_size / seconds:,.0f}")
        if monitor is not None and _monitor_due(cfg, epoch + 1):
            metrics["knn_epoch"].append(epoch + 1)
            metrics["knn"].append(monitor(model, device))
            model.train()
        if epoch + 1 in snapshot_epochs(cfg):
            _save_snapshot(Path(workdir) / snapshot_name(epoch + 1), model)
        _save_checkpoint(ckpt, model, opt, epoch + 1, metrics, target)
    bar.close()
    train_seconds = sum(metrics["epoch_seconds"])
    metrics["images_per_s"] = steps_per_epoch * cfg.batch_size * len(metrics["epoch"]) / max(train_seconds, 1e-9)
    metrics["train_seconds"] = train_seconds
    metrics["snapshots"] = snapshot_epochs(cfg)
    return TrainResult(model.eval(), metrics, device, dtype, channels_last, torch.get_num_threads())
