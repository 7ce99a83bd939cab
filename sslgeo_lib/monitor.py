"""Did the encoder learn? The kNN protocol (the recipe benchmark's, the methods page's and the learned gate's), its
untrained floor, and the cheaper training-curve monitor (recorded with a run, never shapes it).

The protocol: cosine kNN (k = 20) of h, classifying `protocol_queries` class-balanced test images against a bank of
`protocol_bank` class-balanced training images (EvalSettings: 2,000 and 10,000 unless a preset says otherwise; both
drawn with seed 0 from the whole splits, the same for every run, so that runs and recipes compare). Its floor is the
same seed's untrained encoder, with its BatchNorm statistics re-estimated on the bank (`untrained_encoder`): an
encoder at initialisation in eval mode otherwise normalises with the initial running statistics (mean 0, variance 1)
and reads lower than an untrained network really is. `untrained_knn` measures it once per process for each initial
encoder.

The monitor, measured during training after every `monitor_every` epochs, is smaller so that it costs little:
`MONITOR_QUERIES` test images against `MONITOR_BANK` images of the run's own training subset. With a fifth of the
default protocol's bank it reads lower than the protocol (fewer neighbours of each class to vote); its curve shows the
shape of learning, and the protocol, measured once on the finished run, says how much was learned.
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch

from sslgeo_lib.config import EvalSettings
from sslgeo_lib.data import load_dataset
from sslgeo_lib.embed import encode, exact_fp32, image_batches, reestimate_batchnorm
from sslgeo_lib.probes import knn_accuracy
from sslgeo_lib.training.loop import new_model
from sslgeo_lib.training.subset import class_balanced_subset


def protocol_indices(data, ev: EvalSettings) -> tuple[np.ndarray, np.ndarray]:
    """(bank indices in the training split, query indices in the test split) of the protocol of `ev`."""
    bank = class_balanced_subset(data.y_train, min(ev.protocol_bank, len(data.y_train)), 0)
    queries = class_balanced_subset(data.y_test, min(ev.protocol_queries, len(data.y_test)), 0)
    return bank, queries


def knn_of_h(encoder: torch.nn.Module, dataset: str, device, ev: EvalSettings) -> float:
    """The protocol's kNN accuracy of `encoder` on `dataset`. Range [0, 1]; chance 1 / n_classes."""
    data = load_dataset(dataset)
    bank, queries = protocol_indices(data, ev)
    h_bank = encode(encoder, data.x_train[bank], device=device)
    h_query = encode(encoder, data.x_test[queries], device=device)
    return knn_accuracy(h_bank, data.y_train[bank], h_query, data.y_test[queries])


def untrained_encoder(cfg, ev: EvalSettings, device="cpu") -> torch.nn.Module:
    """The encoder of `cfg` at initialisation (its seed), BatchNorm statistics re-estimated on the protocol's bank."""
    return _reestimated(new_model(cfg).encoder, cfg.dataset, ev, device)


def _reestimated(encoder: torch.nn.Module, dataset: str, ev: EvalSettings, device) -> torch.nn.Module:
    data = load_dataset(dataset)
    bank, _ = protocol_indices(data, ev)
    return reestimate_batchnorm(encoder.to(device), image_batches(data.x_train[bank], device))


_UNTRAINED_KNN: dict[str, float] = {}  # untrained_knn's results in this process, by what determines them


def untrained_knn(cfg, ev: EvalSettings, device="cpu") -> float:
    """The protocol's kNN accuracy of `cfg`'s untrained encoder (`untrained_encoder`, in fp32: `exact_fp32`),
    computed once per process for each initial encoder: it depends only on that encoder (its modules and initial
    weights, which the runs of one seed share whatever their strength, objective or projector), the data (its
    content fingerprint), the protocol and the device, which key it."""
    encoder = new_model(cfg).encoder
    digest = hashlib.sha256(f"{encoder!r}|{load_dataset(cfg.dataset).fingerprint}|{ev.protocol_bank}|"
                            f"{ev.protocol_queries}|{torch.device(device)}".encode())
    for name, tensor in encoder.state_dict().items():
        digest.update(name.encode() + tensor.cpu().numpy().tobytes())
    key = digest.hexdigest()
    if key not in _UNTRAINED_KNN:
        with exact_fp32():
            _UNTRAINED_KNN[key] = knn_of_h(_reestimated(encoder, cfg.dataset, ev, device), cfg.dataset, device, ev)
    return _UNTRAINED_KNN[key]


MONITOR_BANK = 2000    # training images in the monitor's bank (from the run's own subset)
MONITOR_QUERIES = 1000  # test images it classifies (fixed, seed 0: the curve compares epochs and runs)


def monitor_accuracy(model, cfg, device) -> float:
    """The training monitor: kNN (k = 20, cosine) accuracy of h on MONITOR_QUERIES test images against
    MONITOR_BANK images of the run's training subset. Range [0, 1]; chance 1 / n_classes."""
    data = load_dataset(cfg.dataset)
    bank = class_balanced_subset(data.y_train, min(MONITOR_BANK, cfg.n_train or len(data.y_train)), cfg.subset_seed)
    queries = class_balanced_subset(data.y_test, min(MONITOR_QUERIES, len(data.y_test)), 0)
    h_bank = encode(model.encoder, data.x_train[bank], device=device)
    h_query = encode(model.encoder, data.x_test[queries], device=device)
    return knn_accuracy(h_bank, data.y_train[bank], h_query, data.y_test[queries])


def monitor_for(cfg):
    """The `monitor` callback that `training.loop.train` takes, for `cfg`."""
    return lambda model, device: monitor_accuracy(model, cfg, device)
