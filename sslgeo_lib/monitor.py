"""The training-curve monitor: kNN accuracy of h during training (recorded with a run, never shapes it)."""
from __future__ import annotations

from sslgeo_lib.data import load_dataset
from sslgeo_lib.embed import encode
from sslgeo_lib.probes import knn_accuracy
from sslgeo_lib.training.subset import class_balanced_subset

MONITOR_BANK = 2000    # training images in the kNN bank: enough for a stable curve at a few seconds a check
MONITOR_QUERIES = 1000  # test images it classifies (fixed, seed 0: the curve compares epochs and runs)


def monitor_accuracy(model, cfg, device) -> float:
    """kNN (k = 20, cosine) accuracy of h on MONITOR_QUERIES test images against MONITOR_BANK train images.
    Range [0, 1]; chance 1 / n_classes."""
    data = load_dataset(cfg.dataset)
    bank = class_balanced_subset(data.y_train, min(MONITOR_BANK, cfg.n_train or len(data.y_train)), cfg.subset_seed)
    queries = class_balanced_subset(data.y_test, min(MONITOR_QUERIES, len(data.y_test)), 0)
    h_bank = encode(model.encoder, data.x_train[bank], device=device)
    h_query = encode(model.encoder, data.x_test[queries], device=device)
    return knn_accuracy(h_bank, data.y_train[bank], h_query, data.y_test[queries])


def monitor_for(cfg):
    """The `monitor` callback that `training.loop.train` takes, for `cfg`."""
    return lambda model, device: monitor_accuracy(model, cfg, device)
