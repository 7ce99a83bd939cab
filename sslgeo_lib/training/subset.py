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
    classes, counts = np.unique(labels, return_counts=True)
    per_class = np.full(len(classes), n // len(classes))
    per_class[: n % len(classes)] += 1
    if np.any(per_class > counts):  # an unbalanced set: fill the small classes, share the rest equally
        per_class = _water_fill(n, counts)
    picks = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, per_class)]
    return np.sort(np.concatenate(picks))


def _water_fill(n: int, counts: np.ndarray) -> np.ndarray:
    """Per-class sizes summing to n, none above its class's count, as equal as the counts allow (classes that
    cannot reach the equal share give all they have; the remainder goes to the first of the others)."""
    out = np.zeros(len(counts), dtype=int)
    left, open_ = n, list(np.argsort(counts, kind="stable"))
    while open_:
        share = left // len(open_)
        small = [c for c in open_ if counts[c] <= share]
        if not small:
            for i, c in enumerate(sorted(open_)):
                out[c] = share + (1 if i < left - share * len(open_) else 0)
            return out
        for c in small:
            out[c] = counts[c]
            left -= counts[c]
            open_.remove(c)
    return out
