"""What a run is (`RunConfig`) and how it is evaluated (`EvalSettings`): two frozen, validated dataclasses.

Each is validated in `__post_init__`: a bad field fails at once with a message that names the field, what was
wrong and what is accepted. A RunConfig's JSON form, the training code's hash and the data's fingerprint name
the stored run (`store.run_id`); EvalSettings key only the derived caches, never a run.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from sslgeo_lib.data import check_dataset
from sslgeo_lib.training.augment import FAMILIES, policy
from sslgeo_lib.training.models import ENCODERS

METHODS = ("simclr", "vicreg", "barlow_twins", "byol")  # SSL objectives (training/losses.py; B1)
PRECISIONS = ("auto", "bf16", "fp32")
OPTIMIZERS = ("sgd", "lars")
DECAY_SCOPES = ("all", "weights")
VIEW_BATCHNORMS = ("shared", "per_view")
MAX_SEED = 2**31 - 1  # seeds feed numpy and torch generators (seed * 1_000_003 + epoch must stay in 64 bits)
_TYPES = {"int": int, "float": float, "str": str, "tuple[float, ...]": tuple}  # annotations, as strings


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one trained model. Units and reasons inline."""

    dataset: str = "cifar10"       # cifar10 | cifar100 | stl10 | the path of an ImageFolder tree or tarball
    n_train: int = 10_000          # class-balanced training subset (0 = the whole training set)
    subset_seed: int = 0           # which subset; fixed across seeds so that seeds vary only init and views
    encoder: str = "small_cnn"     # small_cnn (CPU) | small_resnet (CPU, residual) | resnet18 (CIFAR stem)
    encoder_width: int = 32        # small_cnn and small_resnet base width; D = 8 * width (ignored by resnet18, D = 512)
    projector_width: int = 512     # hidden width of the projector MLP
    projector_depth: int = 2       # linear layers of the projector (0 = none: the loss on h; 1 = linear); SimCLR: 2
    projector_out: int = 128       # m, dimension of z; SimCLR uses 128
    method: str = "simclr"         # SSL objective: simclr (NT-Xent) | vicreg | barlow_twins | byol (B1)
    strength: float = 0.5          # augmentation strength s (0 = identity; 0.5 = SimCLR's CIFAR setting)
    augment_family: str = "all"    # which augmentations s scales: all | crop | color | flip (the others off; B2)
    epochs: int = 12               # passes over the training subset (cpu preset: docs/recipe.md)
    batch_size: int = 256          # source images per step (two views each)
    lr: float = 0.06               # base learning rate at batch 256, scaled linearly with batch size
    optimizer: str = "sgd"         # sgd (momentum 0.9) | lars (SGD with LARS's layer-wise trust ratio; You et al. 2017)
    warmup_epochs: int = 0         # epochs of linear learning-rate warm-up before the cosine decay
    weight_decay: float = 5e-4     # weight decay (common SimCLR-on-CIFAR value)
    decay_scope: str = "all"       # which parameters weight decay (and LARS's trust ratio) touch: all | weights
                                   # (conv and linear weight matrices only, not BatchNorm parameters or biases)
    view_batchnorm: str = "shared"  # shared (both views in one forward pass, one set of BatchNorm batch statistics)
                                    # | per_view (each view forwarded alone, as the reference implementations do)
    temperature: float = 0.5       # NT-Xent tau; 0.5 is the usual CIFAR choice (simclr only)
    ema: float = 0.99              # BYOL's base target decay tau_0, cosine-raised to 1 (Grill et al. 2020; byol only)
    seed: int = 0                  # model initialisation, batch order and augmentation draws
    precision: str = "auto"        # auto (bf16 where the hardware has it) | bf16 | fp32
    monitor_every: int = 4         # epochs between kNN-accuracy checkpoints in the training curve (0 = end only)

    def __post_init__(self):
        _check_types(self)
        self._check_choices()
        self._check_ranges()

    def _check_choices(self):
        for name, allowed in (("encoder", ENCODERS), ("method", METHODS), ("precision", PRECISIONS),
                              ("augment_family", tuple(FAMILIES)), ("optimizer", OPTIMIZERS),
                              ("decay_scope", DECAY_SCOPES), ("view_batchnorm", VIEW_BATCHNORMS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"RunConfig.{name}={getattr(self, name)!r} is unknown; accepted: "
                                 f"{', '.join(allowed)}")
        try:
            object.__setattr__(self, "dataset", check_dataset(self.dataset, must_exist=False))  # a path: absolute
        except ValueError as exc:
            raise ValueError(f"RunConfig.{exc}") from None

    def _check_ranges(self):
        policy(self.strength)  # raises for negative or non-finite strength
        if not 0 <= self.ema < 1:
            raise ValueError(f"RunConfig.ema must lie in [0, 1), got {self.ema!r}")
        positive = ("encoder_width", "projector_width", "projector_out", "epochs", "batch_size", "lr", "temperature")
        for name in positive:
            if not getattr(self, name) > 0 or not math.isfinite(getattr(self, name)):
                raise ValueError(f"RunConfig.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("n_train", "weight_decay", "monitor_every", "seed", "subset_seed", "projector_depth",
                     "warmup_epochs"):
            if not getattr(self, name) >= 0 or not math.isfinite(getattr(self, name)):
                raise ValueError(f"RunConfig.{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("seed", "subset_seed"):
            if getattr(self, name) > MAX_SEED:
                raise ValueError(f"RunConfig.{name} must lie in [0, {MAX_SEED}] (2**31 - 1), got {getattr(self, name)}")
        if self.warmup_epochs >= self.epochs:
            raise ValueError(f"RunConfig.warmup_epochs={self.warmup_epochs} must be smaller than epochs={self.epochs}")
        if 0 < self.n_train < 2 * self.batch_size:
            raise ValueError(f"RunConfig.n_train={self.n_train} must hold at least two batches "
                             f"(batch_size={self.batch_size}), or be 0 for the whole set")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> "RunConfig":
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise KeyError(f"unknown RunConfig field(s) {sorted(unknown)}; accepted: {field_names()}")
        return dataclasses.replace(self, **changes)


def _check_types(obj) -> None:
    """Coerce int -> float where a float is declared, and fail on any other type mismatch."""
    for f in dataclasses.fields(obj):
        value, want = getattr(obj, f.name), _TYPES[f.type]
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            object.__setattr__(obj, f.name, float(value))
        elif want is tuple and isinstance(value, list):
            object.__setattr__(obj, f.name, tuple(value))
        elif not isinstance(value, want) or isinstance(value, bool):
            raise TypeError(f"{type(obj).__name__}.{f.name} must be {f.type}, got {value!r} ({type(value).__name__})")


def field_names(cls=None) -> list[str]:
    return [f.name for f in dataclasses.fields(cls or RunConfig)]


def field_types(cls) -> dict[str, type]:
    return {f.name: _TYPES[f.type] for f in dataclasses.fields(cls)}


@dataclass(frozen=True)
class EvalSettings:
    """How every claim evaluates a trained run: the one home of these numbers. Units and reasons inline.

    Sizes of 0 mean "all" (all 10,000 test images; every test image as an anchor; n_id = the test subset).
    The evaluation draws (test subset, anchors, views, probe splits) are seeded by each run's own seed, so
    an interval over seeds covers training and evaluation randomness together (CLAIMS.md, rules v2 and v3).
    """

    n_test: int = 2000             # held-out test images every metric uses (0 = all); 2,000 = 200 per class
    n_views: int = 8               # augmented views per test image (C2, C4, C5); K = 8 keeps V_aug's error small
    n_anchor: int = 200            # anchor points for Jacobians and tangent planes (C3 J-rank, C4); 0 = n_test
    eval_strength: float = 1.0     # the fixed s_eval shared by every run (C2's second row, C5): SimCLR's policy
    n_id: int = 1000               # points for the intrinsic-dimension estimators, equal for h and z (0 = n_test)
    n_probe_train: int = 0         # clean training images the probes (C1, B4) and tangent planes (C4) use: drawn
                                   # class-balanced from the training split by the run's seed (0 = the run's own
                                   # training subset); bounds the probes' cost on the full training set
    n_probe_test: int = 0          # test images the probes score (C1; 0 = all 10,000: the paired accuracy
                                   # difference on 2,000 images alone has sd ~0.01, C1's delta)
    tangent_k: int = 50            # clean training neighbours that define a local tangent plane (C4)
    tangent_d: int = 8             # the fixed tangent-plane dimension d (C4; the local lPCA d is reported too)
    small_strength: float = 0.25   # strength of the views that define the augmentation directions U_i (C4)
    aug_dims: int = 3              # dim U_i: top principal directions of an anchor's views (C4)
    knn_k: int = 20                # neighbours of the cosine kNN probe (C1; Wu et al. 2018 use 200 on ImageNet)
    probe_c_grid: tuple[float, ...] = (1e-2, 1e-1, 1.0)  # inverse L2 strengths of the linear probe (C1)
    probe_val_fraction: float = 0.2    # share of the training subset that picks the probe's C
    retention_test_fraction: float = 0.3  # share of images held out by the C5 parameter regressions
    protocol_bank: int = 10_000    # the learned gate's kNN protocol (`monitor`): class-balanced training images in
                                   # its bank, and
    protocol_queries: int = 2_000  # the test images it classifies (both drawn with seed 0, the same for every run;
                                   # fewer where the split has fewer)

    def __post_init__(self):
        _check_types(self)
        for name in ("n_test", "n_anchor", "n_id", "n_probe_train", "n_probe_test"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0 = all), got {getattr(self, name)}")
        for name in ("n_views", "tangent_k", "tangent_d", "aug_dims", "knn_k", "protocol_bank", "protocol_queries"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_views < 2:
            raise ValueError(f"n_views must be >= 2 (invariance compares views of one image), got {self.n_views}")
        for name in ("eval_strength", "small_strength"):
            policy(getattr(self, name))
        for name in ("probe_val_fraction", "retention_test_fraction"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must lie in (0, 1), got {getattr(self, name)}")
        for name in ("n_anchor", "n_id"):
            if self.n_test and getattr(self, name) > self.n_test:
                raise ValueError(f"{name}={getattr(self, name):,} is larger than n_test={self.n_test:,}: these points "
                                 f"are drawn from the test subset (use {name} <= n_test, or 0 for all of it)")
        if not self.probe_c_grid or any(not c > 0 for c in self.probe_c_grid):
            raise ValueError(f"probe_c_grid must be a non-empty list of positive numbers, got {self.probe_c_grid}")

    def replace(self, **changes) -> "EvalSettings":
        return dataclasses.replace(self, **changes)

    def test_size(self, n_available: int) -> int:
        """n_test resolved against the test set (0 = all); larger than the set is an error."""
        return _resolve("n_test", self.n_test, n_available)

    def probe_test_size(self, n_available: int) -> int:
        """n_probe_test resolved against the test set (0 = all)."""
        return _resolve("n_probe_test", self.n_probe_test, n_available)

    def anchor_size(self, n_available: int) -> int:
        """n_anchor resolved (0 = the test subset); the anchors are the first test-subset images."""
        return _resolve("n_anchor", self.n_anchor, self.test_size(n_available))

    def id_size(self, n_available: int) -> int:
        """n_id resolved against the test subset (0 = all of it)."""
        return _resolve("n_id", self.n_id, self.test_size(n_available))


def _resolve(name: str, n: int, available: int) -> int:
    if n > available:
        raise ValueError(f"{name}={n:,} is larger than the {available:,} images available (0 means all of them)")
    return available if n == 0 else n
