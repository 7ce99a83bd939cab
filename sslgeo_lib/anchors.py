"""Published anchors beside this book's numbers: for each one, this build's comparable quantity in words, computed
from the claim pages' own tables at the strongest strength (the published numbers, with their citations, are in
the pages' text). A GPU edition's column reads this build's value when the build is a GPU preset."""
from __future__ import annotations

import numpy as np
import pandas as pd

from sslgeo_lib.measures import erank_ratio, layer_difference, retention_scores
from sslgeo_lib.stats import mean_ci

GPU_PRESETS = ("gpu-lite", "gpu")
NOT_BUILT = "not in this build (the GPU edition is built on a GPU: benchmarks/gpu_check.sh)"


def _strongest(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["strength"] == df["strength"].max()]


def _ci(values, digits: int = 3) -> str:
    m, lo, hi = mean_ci(values)
    return f"{m:.{digits}f}" + ("" if np.isnan(lo) else f" [{lo:.{digits}f}, {hi:.{digits}f}]")


def _at(df: pd.DataFrame) -> str:
    return f"at s = {df['strength'].max():g}, {df['seed'].nunique()} seeds"


def transfer_anchor(df: pd.DataFrame) -> str:
    """SimCLR's projector ablation: linear-probe accuracy of h and z, and their gap (df: measures.transfer_table)."""
    top = _strongest(df)
    acc = top.pivot_table(index="seed", columns="layer", values="linear")
    gap = layer_difference(top, "linear", a="h", b="z")["linear"]
    return (f"linear probe: acc(h) {acc['h'].mean():.3f}, acc(z) {acc['z'].mean():.3f}; h ahead by "
            f"{_ci(100 * gap, 1)} points ({_at(top)})")


def retention_anchor(df: pd.DataFrame) -> str:
    """SimCLR's Table 3: how much of the augmentation the features keep, h against z (df: measures.retention_table;
    our task: the augmentation parameters' held-out R^2, not SimCLR's transformation classification)."""
    top = retention_scores(_strongest(df)).pivot_table(index="seed", columns="layer", values="retention")
    return (f"augmentation parameters recovered (mean held-out R2): h {top['h'].mean():.3f}, z {top['z'].mean():.3f} "
            f"({_at(_strongest(df))})")


def shape_anchor(df: pd.DataFrame) -> str:
    """DirectCLR's heads table: linear-probe accuracy of h by projector, none / linear / 2-layer (df:
    measures.shape_table), at the strong strength, the smallest width of each depth."""
    top = _strongest(df)
    parts = []
    for depth, name in ((2, "2-layer"), (1, "linear"), (0, "none")):
        rows = top[top["depth"] == depth]
        if len(rows):
            rows = rows[rows["width"] == rows["width"].min()]
            parts.append(f"{name} {rows['acc_h'].mean():.3f}")
    return f"linear-probe acc(h): {', '.join(parts)} ({_at(top)})"


def collapse_anchor(df: pd.DataFrame, d_h: int, d_z: int) -> str:
    """Jing et al.'s dimensional collapse: effective rank of z and of h against their ambient dimensions (df:
    measures.dimension_table)."""
    top = erank_ratio(_strongest(df))
    return (f"effective rank of z {top['z'].mean():.1f} of m = {d_z}, of h {top['h'].mean():.1f} of D = {d_h} "
            f"({_at(top)})")


def gpu_column(preset_name: str, text: str) -> str:
    """The GPU edition's column: this build's value when it is one, else NOT_BUILT."""
    return text if preset_name in GPU_PRESETS else NOT_BUILT
