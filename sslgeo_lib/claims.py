"""Per-claim measurements over a trained sweep, as tidy tables, and each claim's verdict.

Every function takes the sweep's runs and the preset (for the evaluation sizes), computes per-run
values (cached in each run's store entry) and returns a DataFrame with one row per run x layer x setting,
columns `strength` and `seed` always present. Verdicts use `stats` (the rule of CLAIMS.md).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from sslgeo_lib import geometry, probes, stats
from sslgeo_lib.augment import BINARY_PARAMS, PARAM_NAMES
from sslgeo_lib.config import Preset
from sslgeo_lib.embed import clean_features, view_features
from sslgeo_lib.store import Run

FIXED_EVAL_STRENGTH = 1.0  # the evaluation strength shared by every run (CLAIMS.md C2, C5)


def _row(run: Run, **values) -> dict:
    return {"strength": run.config.strength, "seed": run.config.seed, **values}


# --- C2: invariance ----------------------------------------------------------------------------

def invariance_table(runs: list[Run], preset: Preset) -> pd.DataFrame:
    """Invariance I and mean view cosine of h and z, at s_eval = s_train ("train") and s_eval = 1 ("1").

    Columns: strength, seed, eval ("train" | "1"), layer ("h" | "z"), invariance, v_aug, v_tot, cosine.
    """
    rows = []
    for run in runs:
        for label, s_eval in (("train", run.config.strength), ("1", FIXED_EVAL_STRENGTH)):
            views = view_features(run, preset.n_test, s_eval, preset.n_views)
            for layer in ("h", "z"):
                rows.append(_row(run, eval=label, layer=layer, **geometry.invariance(views[layer]),
                                 cosine=geometry.view_cosine(views[layer])))
    return pd.DataFrame(rows)


def layer_difference(df: pd.DataFrame, value: str, keys=("eval",), a: str = "z", b: str = "h") -> pd.DataFrame:
    """Per run, value(layer a) - value(layer b): columns strength, seed, *keys, `value`."""
    idx = ["strength", "seed", *keys]
    wide = df.pivot_table(index=idx, columns="layer", values=value).reset_index()
    wide[value] = wide[a] - wide[b]
    return wide[idx + [value]]


def invariance_verdicts(df: pd.DataFrame) -> dict[str, stats.ClaimResult]:
    """C2: primary = I(z) - I(h) > 0 at every s > 0 with s_eval = s_train; also the same at s_eval = 1,
    and the trend (slope over s) of I(z) - I(h) at the fixed s_eval = 1, predicted > 0."""
    diff = layer_difference(df, "invariance")
    at_train, at_one = diff[diff["eval"] == "train"], diff[diff["eval"] == "1"]
    what = "I(z) - I(h)"
    return {
        "primary": stats.per_strength_claim("C2", f"{what}, s_eval = s_train", at_train, "invariance", +1),
        "fixed_eval": stats.per_strength_claim("C2", f"{what}, s_eval = 1", at_one, "invariance", +1),
        "trend": stats.trend_claim("C2", f"{what} at s_eval = 1", at_one, "invariance", +1),
    }


# --- C1: transfer ------------------------------------------------------------------------------

def transfer_table(runs: list[Run], preset: Preset) -> pd.DataFrame:
    """Linear-probe and kNN accuracy of every layer (h, projector hidden layers, z), trained on the run's
    own training subset (labels), tested on the held-out test subset.

    Columns: strength, seed, layer, depth (0 = h, ..., last = z), linear, knn.
    """
    rows = []
    for run in runs:
        def compute(run=run):
            train, test = clean_features(run, "train", 0), clean_features(run, "test", preset.n_test)
            out = {}
            for layer in layer_names(train):
                out[f"{layer}_linear"] = np.array(probes.linear_probe(train[layer], train["y"], test[layer],
                                                                      test["y"])["accuracy"])
                out[f"{layer}_knn"] = np.array(probes.knn_accuracy(train[layer], train["y"], test[layer], test["y"]))
            return out

        acc = run.cached("transfer", {"n_test": preset.n_test}, compute)
        layers = [k[: -len("_linear")] for k in acc if k.endswith("_linear")]
        rows += [_row(run, layer=layer, depth=i, linear=float(acc[f"{layer}_linear"]),
                      knn=float(acc[f"{layer}_knn"])) for i, layer in enumerate(layers)]
    return pd.DataFrame(rows)


def layer_names(features: dict) -> list[str]:
    """Layers in network order: h, hidden1, ..., z."""
    hidden = sorted((k for k in features if k.startswith("hidden")), key=lambda k: int(k[len("hidden"):]))
    return ["h", *hidden, "z"]


def transfer_verdicts(df: pd.DataFrame) -> dict[str, stats.ClaimResult]:
    """C1: primary = linear-probe gap acc(h) - acc(z) > 0 at every s > 0; trend: the gap grows with s;
    the same for kNN accuracy."""
    out = {}
    for metric in ("linear", "knn"):
        gap = layer_difference(df, metric, keys=(), a="h", b="z")
        name = f"{'linear-probe' if metric == 'linear' else 'kNN'} acc(h) - acc(z)"
        key = "primary" if metric == "linear" else "knn"
        out[key] = stats.per_strength_claim("C1", name, gap, metric, +1)
        out[f"{key}_trend"] = stats.trend_claim("C1", name, gap, metric, +1)
    return out


# --- C3: dimension -----------------------------------------------------------------------------

def dimension_table(runs: list[Run], preset: Preset, n_id: int = 1000) -> pd.DataFrame:
    """Dimension of clean test features of h and z: effective rank, participation ratio, PCA dimensions at
    90% and 99%, intrinsic dimension (TwoNN, MLE, lPCA) at the same n for both, and (row layer = "J") the
    mean effective rank of the projector Jacobian at the anchors.

    Columns: strength, seed, layer, measure, value.
    """
    rows = []
    for run in runs:
        def compute(run=run):
            test = clean_features(run, "test", preset.n_test)
            n = min(n_id, len(test["y"]))
            out = {}
            for layer in ("h", "z"):
                x = test[layer]
                out |= {f"{layer}|effective rank": geometry.effective_rank(x),
                        f"{layer}|participation ratio": geometry.participation_ratio(x),
                        f"{layer}|PCA dim 90%": geometry.pca_dimension(x, 0.9),
                        f"{layer}|PCA dim 99%": geometry.pca_dimension(x, 0.99),
                        **{f"{layer}|ID {e}": geometry.intrinsic_dimension(x, n, e) for e in geometry.ID_ESTIMATORS}}
            anchors = clean_features(run, "test", preset.n_anchor)
            jac = geometry.jacobians(run.model().projector, anchors["h"])
            out["J|effective rank"] = float(geometry.jacobian_effective_rank(jac).mean())
            return {k: np.array(v, dtype=float) for k, v in out.items()}

        values = run.cached("dimension", {"n_test": preset.n_test, "n_id": n_id, "n_anchor": preset.n_anchor},
                            compute)
        rows += [_row(run, layer=k.split("|")[0], measure=k.split("|")[1], value=float(v)) for k, v in values.items()]
    return pd.DataFrame(rows)


def spectra(runs: list[Run], preset: Preset) -> pd.DataFrame:
    """Normalised singular-value spectra (s_i / s_1) of clean test features of h and z, per run.
    Columns: strength, seed, layer, index (1-based), value."""
    rows = []
    for run in runs:
        test = clean_features(run, "test", preset.n_test)
        for layer in ("h", "z"):
            sv = geometry.singular_values(test[layer])
            rows += [_row(run, layer=layer, index=i + 1, value=float(v)) for i, v in enumerate(sv / sv[0])]
    return pd.DataFrame(rows)


def dimension_verdicts(df: pd.DataFrame) -> dict[str, stats.ClaimResult]:
    """C3: primary = the ratio erank(z) / erank(h) falls with s (slope < 0: the projector's output is the
    lower-dimensional one, more so under stronger augmentation); also per s > 0, log(erank(z) / erank(h)) < 0,
    and the slope of the projector-Jacobian rank over s (< 0)."""
    er = df[df["measure"] == "effective rank"]
    wide = er.pivot_table(index=["strength", "seed"], columns="layer", values="value").reset_index()
    wide["ratio"] = wide["z"] / wide["h"]
    wide["log_ratio"] = np.log(wide["ratio"])
    return {
        "primary": stats.trend_claim("C3", "erank(z) / erank(h)", wide, "ratio", -1),
        "per_strength": stats.per_strength_claim("C3", "log(erank(z) / erank(h))", wide, "log_ratio", -1),
        "jacobian": stats.trend_claim("C3", "projector-Jacobian effective rank", wide, "J", -1),
    }


# --- C4: tangent plane -------------------------------------------------------------------------

TANGENT_K = 50          # neighbours (clean training images) that define a local tangent plane
SMALL_STRENGTH = 0.25   # strength of the views that define the augmentation directions U_i
AUG_DIMS = 3            # dim(U_i): top principal directions of an anchor's views


def tangent_table(runs: list[Run], preset: Preset, tangent_dim: int = 8, k: int = TANGENT_K,
                  small_strength: float = SMALL_STRENGTH, aug_dims: int = AUG_DIMS) -> pd.DataFrame:
    """Alignment of the projector's kept subspace A_i (top-r right singular vectors of J(h_i), r its rounded
    effective rank) with the local data tangent plane T_i (top-d PCA of the k nearest clean training
    features), for d fixed (`tangent_dim`) and d = the neighbourhood's lPCA dimension; baselines: the global
    top-d PCA subspace and a random subspace (max(r, d) / D); and the suppression rho of the augmentation
    directions U_i. Means over the preset's anchors.

    `rho_normalized` measures the same suppression through z / ||z||, the map NT-Xent sees.

    Columns: strength, seed, d_mode ("fixed" | "local"), alpha_local, alpha_global, alpha_random, d, r, rho,
    rho_normalized.
    """
    rows = []
    for run in runs:
        settings = {"n_anchor": preset.n_anchor, "tangent_dim": tangent_dim, "k": k, "small": small_strength,
                    "aug_dims": aug_dims, "n_views": preset.n_views}
        values = run.cached("tangent", settings, lambda run=run: _tangent_arrays(
            run, preset, tangent_dim, k, small_strength, aug_dims))
        for mode in ("fixed", "local"):
            rows.append(_row(run, d_mode=mode, **{c: float(values[f"{mode}_{c}"].mean())
                                                  for c in ("alpha_local", "alpha_global", "alpha_random", "d")},
                             r=float(values["r"].mean()), rho=float(values["rho"].mean()),
                             rho_normalized=float(values["rho_normalized"].mean())))
    return pd.DataFrame(rows)


def _tangent_arrays(run: Run, preset: Preset, tangent_dim: int, k: int, small_strength: float,
                    aug_dims: int) -> dict[str, np.ndarray]:
    clean = clean_features(run, "test", preset.n_anchor)
    anchors = clean["h"]
    bank = clean_features(run, "train", 0)["h"]
    views = view_features(run, preset.n_anchor, small_strength, preset.n_views)["h"]  # same anchor images
    jac = geometry.jacobians(run.model().projector, anchors)
    jac_normalized = geometry.normalized_jacobians(jac, clean["z"])
    ranks = np.maximum(1, np.rint(geometry.jacobian_effective_rank(jac))).astype(int)
    nbrs = geometry.neighbours(anchors, bank, k)
    dim = anchors.shape[1]
    global_pca = geometry.local_pca(bank, dim)  # all principal directions, best first
    out = {f"{m}_{c}": [] for m in ("fixed", "local") for c in ("alpha_local", "alpha_global", "alpha_random", "d")}
    out |= {"r": ranks, "rho": [], "rho_normalized": []}
    for i in range(len(anchors)):
        kept = geometry.kept_subspace(jac[i], ranks[i])
        local = bank[nbrs[i]]
        for mode, d in (("fixed", tangent_dim), ("local", geometry.local_dimension(local))):
            out[f"{mode}_alpha_local"].append(geometry.alignment(geometry.local_pca(local, d), kept))
            out[f"{mode}_alpha_global"].append(geometry.alignment(global_pca[:, :d], kept))
            out[f"{mode}_alpha_random"].append(max(ranks[i], d) / dim)
            out[f"{mode}_d"].append(d)
        aug = geometry.augmentation_directions(views[i], aug_dims)
        out["rho"].append(geometry.suppression(jac[i], aug))
        out["rho_normalized"].append(geometry.suppression(jac_normalized[i], aug))
    return {key: np.asarray(v, dtype=float) for key, v in out.items()}


def tangent_verdicts(df: pd.DataFrame) -> dict[str, stats.ClaimResult]:
    """C4: primary = alpha_local - alpha_global > 0 at every s > 0 (d fixed); the same for local d;
    alpha_local - alpha_random > 0; alpha_local < 1 ("noisy"); rho < 1 at every s > 0 and falling with s;
    rho < 1 through the normalised projector z / ||z||."""
    fixed, local = df[df["d_mode"] == "fixed"].copy(), df[df["d_mode"] == "local"].copy()
    for part in (fixed, local):
        part["vs_global"] = part["alpha_local"] - part["alpha_global"]
        part["vs_random"] = part["alpha_local"] - part["alpha_random"]
    return {
        "primary": stats.per_strength_claim("C4", "alpha(local) - alpha(global PCA), d fixed", fixed, "vs_global", +1),
        "local_d": stats.per_strength_claim("C4", "alpha(local) - alpha(global PCA), d local", local, "vs_global", +1),
        "vs_random": stats.per_strength_claim("C4", "alpha(local) - alpha(random), d fixed", fixed, "vs_random", +1),
        "noisy": stats.per_strength_claim("C4", "alpha(local), d fixed, below 1", fixed, "alpha_local", -1, null=1.0),
        "rho": stats.per_strength_claim("C4", "suppression rho, below 1", fixed, "rho", -1, null=1.0),
        "rho_trend": stats.trend_claim("C4", "suppression rho", fixed, "rho", -1),
        "rho_normalized": stats.per_strength_claim("C4", "suppression rho through z / ||z||, below 1", fixed,
                                                   "rho_normalized", -1, null=1.0),
    }


# --- C5: information -----------------------------------------------------------------------------

CONTINUOUS_PARAMS = tuple(p for p in PARAM_NAMES if p not in BINARY_PARAMS)


def retention_table(runs: list[Run], preset: Preset) -> pd.DataFrame:
    """How well each augmentation parameter is recovered from r(t(x)) - r(x), r in {h, z}, for views at the
    fixed s_eval = 1 (the same task for every run): held-out R^2 (continuous) or accuracy (binary).

    Columns: strength, seed, layer, parameter, kind ("R2" | "accuracy"), value.
    """
    rows = []
    for run in runs:
        def compute(run=run):
            clean = clean_features(run, "test", preset.n_test)
            views = view_features(run, preset.n_test, FIXED_EVAL_STRENGTH, preset.n_views)
            params = {p: views[f"param_{p}"] for p in PARAM_NAMES}
            return {f"{layer}|{p}": np.array(v) for layer in ("h", "z")
                    for p, v in probes.parameter_retention(clean[layer], views[layer], params).items()}

        values = run.cached("retention", {"n_test": preset.n_test, "n_views": preset.n_views}, compute)
        for key, v in values.items():
            layer, p = key.split("|")
            rows.append(_row(run, layer=layer, parameter=p, kind="accuracy" if p in BINARY_PARAMS else "R2",
                             value=float(v)))
    return pd.DataFrame(rows)


def retention_scores(df: pd.DataFrame) -> pd.DataFrame:
    """Per run and layer, `retention` = mean held-out R^2 over the continuous parameters."""
    r2 = df[df["kind"] == "R2"]
    return r2.groupby(["strength", "seed", "layer"], as_index=False)["value"].mean().rename(
        columns={"value": "retention"})


def retention_verdicts(df: pd.DataFrame) -> dict[str, stats.ClaimResult]:
    """C5: primary = retention(h) - retention(z) > 0 at every s > 0; trend: retention(z) falls with s."""
    scores = retention_scores(df)
    gap = layer_difference(scores, "retention", keys=(), a="h", b="z")
    z = scores[scores["layer"] == "z"]
    return {
        "primary": stats.per_strength_claim("C5", "retention(h) - retention(z)", gap, "retention", +1),
        "trend": stats.trend_claim("C5", "retention(z)", z, "retention", -1),
    }
