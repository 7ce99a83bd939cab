"""Class-balanced subsets: which training images a run sees (and which test images an evaluation uses)."""
from __future__ import annotations

import numpy as np


def class_balanced_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of `n` samples with (as near as possible) equal counts per class, drawn by `seed`.

    n = 0 selects everything; n larger than the set is an error (never a silent cap).
    """
    if n < 0:
        raise ValueError(f"subset size must be >= 0, got {n}")
    if n > len(labels):
        raise ValueError(f"asked for a subset of {n:,} samples; the set has only {len(labels):,} "
                         f"(use 0 for all of them)")
    if n == 0 or n == len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per_class = np.full(len(classes), n // len(classes))
    per_class[: n % len(classes)] += 1
    picks = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, per_class)]
    return np.sort(np.concatenate(picks))
