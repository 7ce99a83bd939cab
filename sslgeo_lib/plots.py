"""One seaborn theme and the book's standard figures."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from sslgeo_lib.stats import ci_table
from sslgeo_lib.training.augment import augment
from sslgeo_lib.training.subset import class_balanced_subset

LAYER_COLORS = {"h": "#1f77b4", "z": "#d62728"}


def set_theme() -> None:
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind", font_scale=0.95)
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "axes.titleweight": "bold"})


def _palette(hues) -> dict:
    others = iter(sns.color_palette("colorblind", 10)[2:])
    return {h: LAYER_COLORS.get(h) or next(others) for h in hues}


def strength_plot(df: pd.DataFrame, value: str, hue: str = "layer", col: str | None = None,
                  ylabel: str | None = None, title: str | None = None, height: float = 3.4, col_wrap: int = 4,
                  sharey: bool = True):
    """`value` against training strength: mean over seeds with its 95% t-interval, one line per `hue`,
    one panel per `col` (at most `col_wrap` panels a row). Returns the figure."""
    cols = [None] if col is None else list(dict.fromkeys(df[col]))
    ncols = min(len(cols), col_wrap)
    nrows = -(-len(cols) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(height * 1.45 * ncols, height * nrows), squeeze=False,
                             sharey=sharey)
    hues = list(dict.fromkeys(df[hue]))
    colors = _palette(hues)
    for ax, c in zip(axes.flat, cols):
        part = df if c is None else df[df[col] == c]
        for h in hues:
            t = ci_table(part[part[hue] == h], value)
            if t.empty:
                continue
            ax.plot(t["strength"], t["mean"], "o-", color=colors[h], label=str(h))
            ax.fill_between(t["strength"], t["low"], t["high"], color=colors[h], alpha=0.2, lw=0)
            ax.plot(part.loc[part[hue] == h, "strength"], part.loc[part[hue] == h, value], ".",
                    color=colors[h], alpha=0.35, ms=4)
        ax.set_xlabel("training strength s")
        ax.set_title("" if c is None else str(c))
    for ax in axes.flat[len(cols):]:
        ax.set_visible(False)
    for row in axes:
        row[0].set_ylabel(ylabel or value)
    axes.flat[len(cols) - 1].legend(title=hue, frameon=False, loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def image_grid(images: np.ndarray, row_labels, title: str | None = None):
    """A grid of images (rows, cols, 3, H, W) in [0, 1] with one label per row."""
    rows, cols = images.shape[:2]
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.9, rows * 0.95), squeeze=False)
    for i in range(rows):
        for j in range(cols):
            axes[i][j].imshow(np.clip(images[i, j].transpose(1, 2, 0), 0, 1))
            axes[i][j].set_xticks([])
            axes[i][j].set_yticks([])
        axes[i][0].set_ylabel(row_labels[i], rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def curve_plot(loss: pd.DataFrame, knn: pd.DataFrame, learned: pd.DataFrame, height: float = 3.4):
    """Did the encoders learn? Left: the training loss and the monitor's kNN accuracy against epoch, per strength
    (mean and 95% t-interval over seeds). Right: each finished run's kNN accuracy on the protocol (`monitor`)
    beside its untrained encoder's (same seed), a line per run, per strength (`learned`: `sweep.learning_table`)."""
    fig, axes = plt.subplots(1, 3, figsize=(height * 3.6, height))
    strengths = sorted(set(loss["strength"]) | set(learned["strength"]))
    colors = dict(zip(strengths, sns.color_palette("viridis", len(strengths))))
    for ax, df, value, label in ((axes[0], loss, "loss", "training loss"),
                                 (axes[1], knn, "knn", "monitor kNN accuracy of h")):
        for s, part in df.groupby("strength"):
            t = ci_table(part, value, by=("epoch",))
            ax.plot(t["epoch"], t["mean"], "o-", ms=3, color=colors[s], label=f"s = {s:g}")
            ax.fill_between(t["epoch"], t["low"], t["high"], color=colors[s], alpha=0.2, lw=0)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
    axes[1].legend(frameon=False, fontsize="small")
    ax = axes[2]
    for i, s in enumerate(strengths):
        part = learned[learned["strength"] == s]
        for _, r in part.iterrows():
            ax.plot([i - 0.15, i + 0.15], [r["knn_untrained"], r["knn"]], "-", color=colors[s], alpha=0.6)
        ax.plot([i - 0.15] * len(part), part["knn_untrained"], "o", color="gray", ms=4)
        ax.plot([i + 0.15] * len(part), part["knn"], "o", color=colors[s], ms=4)
    ax.set_xticks(range(len(strengths)), [f"{s:g}" for s in strengths])
    ax.set(xlabel="training strength s (grey: untrained, colour: trained)", ylabel="protocol kNN accuracy of h",
           title="Trained against untrained, per seed")
    fig.tight_layout()
    return fig


def layer_profile_plot(df: pd.DataFrame, value: str = "linear", ylabel: str = "linear-probe accuracy"):
    """`value` by layer through the projector (x: h, hidden..., z in depth order), one line per strength:
    mean over seeds with its 95% t-interval."""
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    df = df[df["depth"].notna()]  # the network's layers (z0, the architecture baseline, has no depth)
    order = df.sort_values("depth").drop_duplicates("layer")["layer"].tolist()
    strengths = sorted(df["strength"].unique())
    colors = dict(zip(strengths, sns.color_palette("viridis", len(strengths))))
    for s in strengths:
        t = ci_table(df[df["strength"] == s], value, by=("depth",))
        ax.errorbar(t["depth"], t["mean"], yerr=[t["mean"] - t["low"], t["high"] - t["mean"]], fmt="o-",
                    color=colors[s], capsize=3, label=f"s = {s:g}")
    ax.set_xticks(range(len(order)), order)
    ax.set(xlabel="layer", ylabel=ylabel, title="Accuracy through the projector")
    ax.legend(frameon=False, fontsize="small")
    fig.tight_layout()
    return fig


def spectra_plot(spec: pd.DataFrame):
    """Normalised singular-value spectra (log scale), mean over seeds, one line per strength, a panel per layer."""
    g = sns.relplot(spec, x="index", y="value", hue="strength", col="layer", kind="line", palette="viridis",
                    errorbar=None, height=3.2, aspect=1.3, facet_kws={"sharex": False})
    g.set(yscale="log", ylabel="singular value / largest", xlabel="index")
    g.figure.suptitle("Singular-value spectra (dimensional collapse shows as a cliff)", y=1.03)
    return g.figure


def calibration_plot(cal: pd.DataFrame):
    """Intrinsic-dimension estimates against the true dimension (dashed: the truth), a panel per manifold."""
    g = sns.relplot(cal, x="d", y="estimate", hue="estimator", col="manifold", kind="line", marker="o",
                    errorbar=("ci", 95), height=3.2, aspect=1.2)
    for ax in g.axes.flat:
        ax.plot([0, cal["d"].max()], [0, cal["d"].max()], "--", color="gray")
    g.set(xlabel="true dimension d", ylabel="estimated dimension")
    return g.figure


def theory_plot(linear: pd.DataFrame, counts: pd.DataFrame, threshold: float):
    """C7 (a): trained (dots) vs predicted (lines) relative gains per data variance, and the number of
    collapsed directions (predicted, data-only, measured, two-layer h and z) per strength."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    strengths = sorted(linear["strength"].unique())
    palette = dict(zip(strengths, sns.color_palette("viridis", len(strengths))))
    for s, part in linear.groupby("strength"):
        m = part.groupby("lam")[["pred", "one_layer"]].mean()
        axes[0].plot(m.index, m["pred"], "-", color=palette[s], label=f"s = {s:g}")
        axes[0].plot(part["lam"], part["one_layer"], ".", color=palette[s], alpha=0.6)
    axes[0].set(xscale="log", yscale="log", xlabel="data variance lambda_j", ylabel="relative gain of direction j",
                title="Trained (dots) vs predicted (lines)")
    axes[0].axhline(threshold, ls=":", color="gray")
    axes[0].legend(frameon=False, fontsize="small")
    names = {"predicted": "predicted", "data_only": "data-only alternative", "measured": "one layer (trained)",
             "two_layer_h": "two layers: h", "two_layer_z": "two layers: z"}
    tidy = counts.melt(id_vars=["strength", "seed"], value_vars=list(names), var_name="map", value_name="collapsed")
    sns.pointplot(tidy.assign(map=tidy["map"].map(names)), x="strength", y="collapsed", hue="map",
                  errorbar=("ci", 95), dodge=0.4, ax=axes[1])
    axes[1].set(ylabel="collapsed directions", title="Where the collapse lands")
    fig.tight_layout()
    return fig


def augmentation_examples(data, n: int, strengths, seed: int = 0) -> np.ndarray:
    """`n` class-balanced test images and one random view of each per strength: (1 + len(strengths), n, 3, H, W)
    in [0, 1], for `image_grid`. Drawn from a generator seeded by `seed`."""

    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(data.x_test[class_balanced_subset(data.y_test, n, seed)]).float() / 255
    return np.stack([x.numpy()] + [augment(x, s, gen)[0].numpy() for s in strengths])


def shape_label(depth: int, width: int) -> str:
    """'none' (depth 0), 'linear' (depth 1), or 'depth 2, width 512'."""
    return {0: "none", 1: "linear"}.get(depth, f"depth {depth}, width {width}")


def shape_plot(df: pd.DataFrame, statistics: dict[str, str], height: float = 3.0, col_wrap: int = 3):
    """C6: each statistic (one panel) per projector shape (x) and strength (colour). df: measures.shape_table."""
    df = df.assign(shape=[shape_label(d, w) for d, w in zip(df["depth"], df["width"])])
    order = [shape_label(d, w) for d, w in sorted(set(zip(df["depth"], df["width"])))]
    return group_plot(df, "shape", order, statistics, "Projector shape", height, col_wrap)


def group_plot(df: pd.DataFrame, by: str, order: list, statistics: dict[str, str], what: str, height: float = 3.0,
               col_wrap: int = 3):
    """Each statistic (one panel) per group of column `by` (x, in `order`) and strength (colour): mean over seeds,
    95% t-interval as an error bar, single runs as dots. df: measures.group_table (or shape_table)."""
    cols = list(statistics)
    ncols = min(len(cols), col_wrap)
    nrows = -(-len(cols) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(height * 1.6 * ncols, height * nrows), squeeze=False)
    strengths = sorted(set(df["strength"]))
    colors = dict(zip(strengths, sns.color_palette("colorblind", len(strengths))))
    pos = {name: i for i, name in enumerate(order)}
    for ax, column in zip(axes.flat, cols):
        for k, s in enumerate(strengths):
            part = df[df["strength"] == s]
            t = ci_table(part, column, by=(by,)).set_index(by).reindex(order)
            shift = (k - (len(strengths) - 1) / 2) * 0.15
            ax.errorbar(np.arange(len(order)) + shift, t["mean"], yerr=[t["mean"] - t["low"], t["high"] - t["mean"]],
                        fmt="o", capsize=3, color=colors[s], label=f"s = {s:g}")
            ax.plot(np.array([pos[n] for n in part[by]]) + shift, part[column], ".", color=colors[s], alpha=0.35, ms=4)
        ax.axhline(0, color="0.6", lw=0.8)
        ax.set_xticks(range(len(order)), order, rotation=30, ha="right")
        ax.set_title(statistics[column], fontsize=10)
    for ax in axes.flat[len(cols):]:
        ax.set_visible(False)
    axes.flat[0].legend(frameon=False, title="training strength")
    fig.suptitle(f"{what}: each claim's statistic (mean, 95% t-interval over seeds)")
    fig.tight_layout()
    return fig


def progress_plot(df: pd.DataFrame, statistics: dict[str, str], height: float = 3.2):
    """B4: each statistic (one panel) against the fraction of training done, one line per training strength:
    mean over seeds with its 95% t-interval. df: measures.progress_table."""
    fig, axes = plt.subplots(1, len(statistics), figsize=(height * 1.5 * len(statistics), height), squeeze=False)
    strengths = sorted(set(df["strength"]))
    colors = dict(zip(strengths, sns.color_palette("viridis", len(strengths))))
    for ax, (column, label) in zip(axes.flat, statistics.items()):
        for s in strengths:
            t = ci_table(df[df["strength"] == s], column, by=("progress",))
            ax.plot(100 * t["progress"], t["mean"], "o-", color=colors[s], label=f"s = {s:g}")
            ax.fill_between(100 * t["progress"], t["low"], t["high"], color=colors[s], alpha=0.15, lw=0)
        ax.axhline(0, color="0.6", lw=0.8)
        ax.set_xlabel("% of training done")
        ax.set_title(label, fontsize=10)
    axes.flat[-1].legend(frameon=False, title="training strength", fontsize=8, loc="upper left",
                         bbox_to_anchor=(1.02, 1))  # outside the panel: the lines span its whole height
    fig.suptitle("Each effect as training goes on")
    fig.tight_layout()
    return fig


VERDICT_COLORS = {"supported": "#1b9e77", "contradicted": "#d95f02", "negligible": "#7f7f7f", "mixed": "#e6ab02",
                  "inconclusive": "#7570b3", "not tested": "#c7c7c7"}


FOREST_COLUMNS = ("claim", "label", "verdict", "delta", "direction", "estimate", "low", "high", "per_strength")


def _check_forest_rows(rows: pd.DataFrame) -> None:
    missing = [c for c in FOREST_COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(f"forest_plot rows have missing columns {missing}; expected {list(FOREST_COLUMNS)} "
                         "(claims.forest_rows makes them)")
    if len(rows) == 0:
        raise ValueError("forest_plot got no claims to plot")
    for r in rows.itertuples():
        if not (np.isfinite(r.delta) and r.delta > 0):
            raise ValueError(f"{r.claim}: delta must be a positive number (the negligible band), got {r.delta}")
        if r.direction not in (-1, 1):
            raise ValueError(f"{r.claim}: direction must be +1 or -1 (the predicted sign), got {r.direction}")
        if r.verdict not in VERDICT_COLORS:
            raise ValueError(f"{r.claim}: unknown verdict {r.verdict!r}; expected one of {sorted(VERDICT_COLORS)}")


def forest_plot(rows: pd.DataFrame, height_per_row: float = 0.42):
    """Every claim's primary statistic on one axis, in units of its smallest effect of interest delta and signed so
    that the predicted direction is to the right: the headline interval (bold, coloured by the claim's verdict),
    each strength's interval behind it (faint), and the negligible band (-1, 1) of the verdict rule shaded.
    rows: one per claim with columns claim, label, verdict, delta, direction, estimate, low, high, and `per_strength`
    (a DataFrame with mean, low, high, or None)."""
    _check_forest_rows(rows)
    fig, ax = plt.subplots(figsize=(8.5, 0.9 + height_per_row * len(rows)))
    ax.axvspan(-1, 1, color="0.9", zorder=0, label="negligible band (|effect| < delta)")
    ax.axvline(0, color="0.4", lw=0.8)
    for i, r in enumerate(rows.itertuples()):
        y = len(rows) - 1 - i
        scale = r.direction / r.delta
        color = VERDICT_COLORS[r.verdict]
        if r.per_strength is not None and len(r.per_strength) > 1:
            for k, s in enumerate(r.per_strength.itertuples()):
                lo, hi = sorted((s.low * scale, s.high * scale))
                dy = 0.25 * (k - (len(r.per_strength) - 1) / 2) / max(1, len(r.per_strength) - 1)
                ax.plot([lo, hi], [y + dy, y + dy], color=color, alpha=0.35, lw=1.5)
                ax.plot(s.mean * scale, y + dy, "o", color=color, alpha=0.35, ms=3)
        lo, hi = sorted((r.low * scale, r.high * scale))
        if np.isfinite(lo) and np.isfinite(hi):
            ax.plot([lo, hi], [y, y], color=color, lw=3, solid_capstyle="round")
        ax.plot(r.estimate * scale, y, "D", color=color, ms=7, label=r.verdict)
    ax.set_yticks(range(len(rows)), [f"{c}: {lab}" for c, lab in zip(rows["claim"], rows["label"])][::-1])
    ax.set_xlabel("effect in units of delta, predicted direction to the right")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    ax.set_title("Every claim's primary statistic: headline interval (weakest strength) and each strength")
    fig.tight_layout()
    return fig
