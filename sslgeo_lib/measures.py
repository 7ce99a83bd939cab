"""Per-run measurements of every claim, as tidy tables over a sweep.

Each `*_table(runs, ev)` computes one row per run x layer x setting (columns `strength` and `seed` always
present), caching each run's rows in its store entry keyed by the settings used and the code of
MEASURE_CODE, so editing plots, glue, verdicts or a notebook recomputes nothing. Evaluation draws (test
subset, anchors, views, probe splits) are seeded by each run's own seed. Verdicts live in `claims`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from sslgeo_lib import geometry, probes
from sslgeo_lib.config import EvalSettings
from sslgeo_lib.data import load_dataset
from sslgeo_lib.embed import FEATURE_CODE, clean_features, view_features
from sslgeo_lib.store import Run
from sslgeo_lib.training.augment import BINARY_PARAMS, PARAM_NAMES

MEASURE_CODE = (*FEATURE_CODE, "measures.py", "geometry.py", "probes.py")
EVAL_LABELS = {"train": "s_eval = s_train", "fixed": "s_eval = 1"}  # C2's two evaluation strengths


def _sizes(run: Run, ev: EvalSettings) -> tuple[int, int, int]:
    """(n_test, n_anchor, n_id) resolved against the run's test set (0 = all)."""
    n_all = len(load_dataset(run.config.dataset).y_test)
    return ev.test_size(n_all), ev.anchor_size(n_all), ev.id_size(n_all)


def _table(runs: list[Run], name: str, ev: EvalSettings, fields: tuple[str, ...], rows_of) -> pd.DataFrame:
    """Concatenate each run's cached rows (`rows_of(run) -> list of dicts`) with its strength and seed."""
    settings = {f: getattr(ev, f) for f in fields}
    out = []
    for run in runs:
        rows = run.cached(name, settings, lambda run=run: rows_of(run), MEASURE_CODE)
        out += [{"strength": run.config.strength, "seed": run.config.seed, **r} for r in rows]
    return pd.DataFrame(out)


def layer_names(features: dict) -> list[str]:
    """Layers in network order: h, hidden1, ..., z."""
    hidden = sorted((k for k in features if k.startswith("hidden")), key=lambda k: int(k[len("hidden"):]))
    return ["h", *hidden, "z"]


# --- C2 ------------------------------------------------------------------------------------------

def invariance_table(runs: list[Run], ev: EvalSettings) -> pd.DataFrame:
    """Invariance I and mean view cosine of h, z and z0 = g0(h) (the architecture baseline), at s_eval = s_train
    (eval "train", the run's own augmentation family) and at the fixed s_eval = ev.eval_strength (eval "fixed",
    the full policy). Columns: strength, seed, eval, layer, invariance, v_aug, v_tot, cosine."""
    def rows_of(run):
        n_test = _sizes(run, ev)[0]
        rows = []
        for label, s_eval, family in (("train", run.config.strength, run.config.augment_family),
                                      ("fixed", ev.eval_strength, "all")):
            views = view_features(run, n_test, s_eval, ev.n_views, family=family)
            rows += [{"eval": label, "layer": layer, **geometry.invariance(views[layer]),
                      "cosine": geometry.view_cosine(views[layer])} for layer in ("h", "z", "z0")]
        return rows

    return _table(runs, "invariance", ev, ("n_test", "n_views", "eval_strength"), rows_of)


def layer_difference(df: pd.DataFrame, value: str, keys=(), a: str = "z", b: str = "h") -> pd.DataFrame:
    """Per run, value(layer a) - value(layer b): columns strength, seed, *keys, `value`."""
    idx = ["strength", "seed", *keys]
    wide = df.pivot_table(index=idx, columns="layer", values=value).reset_index()
    wide[value] = wide[a] - wide[b]
    return wide[idx + [value]]


# --- C1 ------------------------------------------------------------------------------------------

def transfer_table(runs: list[Run], ev: EvalSettings) -> pd.DataFrame:
    """Linear-probe and kNN accuracy of every layer (h, projector hidden layers, z) and of z0 = g0(h) (the
    architecture baseline, depth NaN), fitted on ev.n_probe_train clean training images and scored on
    ev.n_probe_test test images (0 = all). Columns: strength, seed, layer, depth (0 = h, ..., last = z), linear,
    knn, C (the probe's chosen inverse regularisation)."""
    def rows_of(run):
        seed = run.config.seed
        n_test = ev.probe_test_size(len(load_dataset(run.config.dataset).y_test))
        train, test = clean_features(run, "train", ev.n_probe_train), clean_features(run, "test", n_test)
        rows = []
        for depth, layer in [*enumerate(layer_names(train)), (float("nan"), "z0")]:
            lin = probes.linear_probe(train[layer], train["y"], test[layer], test["y"], ev.probe_c_grid,
                                      ev.probe_val_fraction, seed)
            knn = probes.knn_accuracy(train[layer], train["y"], test[layer], test["y"], ev.knn_k)
            rows.append({"layer": layer, "depth": depth, "linear": lin["accuracy"], "knn": knn, "C": lin["C"]})
        return rows

    return _table(runs, "transfer", ev, ("n_probe_test", "n_probe_train", "knn_k", "probe_c_grid",
                                         "probe_val_fraction"), rows_of)


# --- C3 ------------------------------------------------------------------------------------------

def dimension_table(runs: list[Run], ev: EvalSettings) -> pd.DataFrame:
    """Dimension of clean test features of h, z and z0 = g0(h) (the architecture baseline): effective rank,
    participation ratio, PCA dimensions at 90% and 99%, intrinsic dimension (TwoNN, MLE, lPCA) at the same n_id
    points for all; (layer "h_top_m") the effective rank of h's projection on its top m principal components
    (m = dim z: what a linear map to m dimensions keeps at best); and (layer "J") the mean effective rank of the
    projector Jacobian at the anchors. Columns: strength, seed, layer, measure, value."""
    def rows_of(run):
        n_test, n_anchor, n_id = _sizes(run, ev)
        test = clean_features(run, "test", n_test)
        rows = []
        for layer in ("h", "z", "z0"):
            x = test[layer]
            values = {"effective rank": geometry.effective_rank(x),
                      "participation ratio": geometry.participation_ratio(x),
                      "PCA dim 90%": geometry.pca_dimension(x, 0.9), "PCA dim 99%": geometry.pca_dimension(x, 0.99),
                      **{f"ID {e}": geometry.intrinsic_dimension(x, n_id, e, run.config.seed)
                         for e in geometry.ID_ESTIMATORS}}
            rows += [{"layer": layer, "measure": k, "value": float(v)} for k, v in values.items()]
        top = geometry.singular_values(test["h"])[: test["z"].shape[1]]
        rows.append({"layer": "h_top_m", "measure": "effective rank",
                     "value": float(geometry.effective_rank_of_spectrum(top[None])[0])})
        jac = geometry.jacobians(run.model().projector, clean_features(run, "test", n_anchor)["h"])
        rows.append({"layer": "J", "measure": "effective rank",
                     "value": float(geometry.jacobian_effective_rank(jac).mean())})
        return rows

    return _table(runs, "dimension", ev, ("n_test", "n_anchor", "n_id"), rows_of)


def erank_ratio(df: pd.DataFrame) -> pd.DataFrame:
    """Per run: erank of h, z, z0, h_top_m and J, the ratio erank(z) / erank(h) and its log (C3's raw
    statistic), log_learned = log(erank(z) / erank(z0)) (the learned part, C3's primary statistic under rule v3)
    and log_vs_top_m = log(erank(z) / erank(h_top_m))."""
    er = df[df["measure"] == "effective rank"]
    wide = er.pivot_table(index=["strength", "seed"], columns="layer", values="value").reset_index()
    wide.columns.name = None
    wide["ratio"] = wide["z"] / wide["h"]
    wide["log_ratio"] = np.log(wide["ratio"])
    wide["log_learned"] = np.log(wide["z"] / wide["z0"])
    wide["log_vs_top_m"] = np.log(wide["z"] / wide["h_top_m"])
    return wide


def spectra(runs: list[Run], ev: EvalSettings) -> pd.DataFrame:
    """Normalised singular-value spectra (s_i / s_1) of clean test features of h and z, per run.
    Columns: strength, seed, layer, index (1-based), value."""
    def rows_of(run):
        test = clean_features(run, "test", _sizes(run, ev)[0])
        rows = []
        for layer in ("h", "z"):
            sv = geometry.singular_values(test[layer])
            rows += [{"layer": layer, "index": i + 1, "value": float(v)} for i, v in enumerate(sv / sv[0])]
        return rows

    return _table(runs, "spectra", ev, ("n_test",), rows_of)


# --- C5 ------------------------------------------------------------------------------------------

def retention_table(runs: list[Run], ev: EvalSettings) -> pd.DataFrame:
    """How well each augmentation parameter is recovered from r(t(x)) - r(x), r in {h, z, z0 = g0(h) (the
    architecture baseline), z_unit = z / ||z|| (what NT-Xent sees)}, for views at the fixed s_eval (the same task
    for every run): held-out R^2 (continuous) or accuracy (binary).
    Columns: strength, seed, layer, parameter, kind ("R2" | "accuracy"), value."""
    def rows_of(run):
        n_test = _sizes(run, ev)[0]
        clean = clean_features(run, "test", n_test)
        views = view_features(run, n_test, ev.eval_strength, ev.n_views)
        params = {p: views[f"param_{p}"] for p in PARAM_NAMES}
        unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
        clean, views = {**clean, "z_unit": unit(clean["z"])}, {**views, "z_unit": unit(views["z"])}
        rows = []
        for layer in ("h", "z", "z0", "z_unit"):
            scores = probes.parameter_retention(clean[layer], views[layer], params, ev.retention_test_fraction,
                                                run.config.seed)
            rows += [{"layer": layer, "parameter": p, "kind": "accuracy" if p in BINARY_PARAMS else "R2",
                      "value": v} for p, v in scores.items()]
        return rows

    return _table(runs, "retention", ev, ("n_test", "n_views", "eval_strength", "retention_test_fraction"),
                  rows_of)


def retention_scores(df: pd.DataFrame) -> pd.DataFrame:
    """Per run and layer, `retention` = mean held-out R^2 over the continuous parameters."""
    r2 = df[df["kind"] == "R2"]
    return r2.groupby(["strength", "seed", "layer"], as_index=False)["value"].mean().rename(
        columns={"value": "retention"})


# --- C4 ------------------------------------------------------------------------------------------

R_MODES = ("erank", "d", "2d")  # r = rounded effective rank of J (primary), and the sensitivity rows r = d, 2d


def tangent_table(runs: list[Run], ev: EvalSettings) -> pd.DataFrame:
    """C4 at the anchors, one row per run x d_mode ("fixed": d = ev.tangent_d; "local": d = the neighbourhood's
    lPCA dimension) x r_mode (R_MODES). T_i = top-d PCA of the tangent_k nearest clean training features of
    h_i; A_i = top-r right singular vectors of J(h_i). Columns (means over anchors): alpha (alpha(A_i, T_i)),
    alpha_other (alpha(A_i, T_j), j a random other anchor), locality_gap (their difference, the v2 primary),
    locality_gap_same_class (the same with j the nearest other anchor of the same class, v3's second foil),
    locality_gap_no_radial (the same with each anchor's radial direction h_i / ||h_i|| removed from A_i and T_i),
    alpha_global (global top-d PCA, v1's foil), alpha_random (max(r, d) / D), d, r; rho_data (the
    augmentation directions U_i against the data directions T_i, v2), rho_random (against random directions
    of R^D, v1) and rho_normalized (v1, through z / ||z||), each a geometric mean over anchors."""
    def rows_of(run):
        return _tangent_rows(run, ev)

    return _table(runs, "tangent", ev, ("n_test", "n_anchor", "n_probe_train", "n_views", "tangent_k",
                                        "tangent_d", "small_strength", "aug_dims"), rows_of)


def _without(bases, anchors: np.ndarray) -> list[np.ndarray]:
    """Each basis (D, r) with the anchor's own radial direction h_i / ||h_i|| projected out, re-orthonormalised:
    a point-dependent direction that both a kept subspace and a local tangent plane can contain (a projector that
    keeps only the norm of h would otherwise score a large locality gap). Bases of equal r share one batched SVD."""
    u = anchors / np.linalg.norm(anchors, axis=1, keepdims=True)
    out: list = [None] * len(bases)
    for r in sorted({q.shape[1] for q in bases}):
        idx = [i for i, q in enumerate(bases) if q.shape[1] == r]
        q, ui = np.stack([bases[i] for i in idx]), u[idx]
        left, s, _ = np.linalg.svd(q - ui[:, :, None] * np.einsum("ad,adr->ar", ui, q)[:, None, :],
                                   full_matrices=False)
        for j, i in enumerate(idx):  # the directions that remain, best first
            out[i] = left[j][:, : max(1, int((s[j] > 1e-6).sum()))]
    return out


def _geometric_mean(ratios) -> float:
    """exp(mean log): the average of gain ratios (a ratio and its inverse average to 1)."""
    return float(np.exp(np.mean(np.log(ratios))))


def _tangent_rows(run: Run, ev: EvalSettings) -> list[dict]:
    n_anchor = _sizes(run, ev)[1]
    clean = clean_features(run, "test", n_anchor)
    anchors, bank = clean["h"], clean_features(run, "train", ev.n_probe_train)["h"]
    views = view_features(run, n_anchor, ev.small_strength, ev.n_views)["h"]  # the same anchor images
    jac = geometry.jacobians(run.model().projector, anchors)
    jac_normalized = geometry.normalized_jacobians(jac, clean["z"])
    _, singular, right = np.linalg.svd(jac.astype(np.float64), full_matrices=False)  # right: (A, min(m, D), D)
    erank = np.maximum(1, np.rint(geometry.effective_rank_of_spectrum(singular))).astype(int)
    nbrs = geometry.neighbours(anchors, bank, ev.tangent_k)
    same_class = geometry.same_class_partners(anchors, clean["y"])
    dim, rng = anchors.shape[1], np.random.default_rng(run.config.seed)
    global_pca = geometry.local_pca(bank, dim)
    aug = geometry.augmentation_directions(views, ev.aug_dims)  # (A, D, aug_dims), one batched SVD
    neighbourhoods = bank[nbrs]  # (A, tangent_k, D)
    planes = geometry.local_pca(neighbourhoods, min(neighbourhoods.shape[1:]))  # every direction, best first
    local_d = [geometry.local_dimension(neighbourhoods[i]) for i in range(len(anchors))]
    rows = []
    for d_mode in ("fixed", "local"):
        ds = [ev.tangent_d] * len(anchors) if d_mode == "fixed" else local_d
        tangents = [planes[i, :, :ds[i]] for i in range(len(anchors))]
        tangents_no_radial = _without(tangents, anchors)
        rho_data = _geometric_mean([geometry.suppression_vs_data(jac[i], aug[i], tangents[i])
                                    for i in range(len(anchors))])
        for r_mode in R_MODES:
            rs = {"erank": erank, "d": np.array(ds), "2d": 2 * np.array(ds)}[r_mode].clip(1, min(jac.shape[1:]))
            kept = [right[i, :rs[i]].T for i in range(len(anchors))]
            gap = geometry.locality_gap(kept, tangents, rng)
            gap_same = geometry.locality_gap(kept, tangents, partners=same_class)
            radial = geometry.locality_gap(_without(kept, anchors), tangents_no_radial, rng)
            alpha = np.array([geometry.alignment(tangents[i], kept[i]) for i in range(len(anchors))])
            rows.append({"d_mode": d_mode, "r_mode": r_mode, "alpha": float(alpha.mean()),
                         "alpha_other": float((alpha - gap).mean()), "locality_gap": float(gap.mean()),
                         "locality_gap_same_class": float(np.nanmean(gap_same)),
                         "locality_gap_no_radial": float(radial.mean()),
                         "alpha_global": float(np.mean([geometry.alignment(global_pca[:, :ds[i]], kept[i])
                                                        for i in range(len(anchors))])),
                         "alpha_random": float(np.mean(np.maximum(rs, ds) / dim)),
                         "d": float(np.mean(ds)), "r": float(np.mean(rs)), "rho_data": float(rho_data)})
    rho_random = _geometric_mean([geometry.suppression(jac[i], aug[i]) for i in range(len(anchors))])
    rho_normalized = _geometric_mean([geometry.suppression(jac_normalized[i], aug[i]) for i in range(len(anchors))])
    return [{**row, "rho_random": float(rho_random), "rho_normalized": float(rho_normalized)} for row in rows]


# --- C6: projector shape ----------------------------------------------------------------------------

SHAPE_STATISTICS = {  # column: what it is (C1-C5's primary statistics under rule v3, their raw forms, and the
    # encoder-side values behind them)
    "acc_h": "linear-probe accuracy of h", "C1": "learned gap acc(z0) - acc(z)", "C1_raw": "acc(h) - acc(z)",
    "I_h": "invariance of h (s_eval = s_train)", "C2": "learned I(z) - I(z0)", "C2_raw": "I(z) - I(h)",
    "log_erank_h": "log effective rank of h", "C3": "log(erank(z) / erank(z0))",
    "C3_raw": "log(erank(z) / erank(h))", "C4": "locality gap (d fixed)", "retention_h": "retention of h",
    "C5": "learned retention(z0) - retention(z)", "C5_raw": "retention(h) - retention(z)",
}


def shape_table(runs: list[Run], ev: EvalSettings) -> pd.DataFrame:
    """C6: one row per run with its projector shape (depth, width), strength, seed and SHAPE_STATISTICS (see
    `group_table`). For depth 0, z is h itself: every h-vs-z difference is 0 by construction, and the
    encoder-side columns carry the comparison."""
    return (group_table(runs, ev, ("projector_depth", "projector_width"))
            .rename(columns={"projector_depth": "depth", "projector_width": "width"}))


def group_table(runs: list[Run], ev: EvalSettings, fields: tuple[str, ...]) -> pd.DataFrame:
    """One row per run: the RunConfig `fields` (e.g. projector depth and width for C6, method for B1,
    augment_family for B2), strength, seed and SHAPE_STATISTICS (C1-C5's primary statistics and the encoder-side
    values behind them). Runs are measured in groups of equal `fields` (one run per strength and seed each) with
    C1-C5's own tables, so every number equals the one the claim pages would give that run."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        groups.setdefault(tuple(getattr(run.config, f) for f in fields), []).append(run)
    for key, group in groups.items():
        points = [(r.config.strength, r.config.seed) for r in group]
        if len(set(points)) < len(points):  # a run counted twice would narrow every interval
            raise ValueError(f"group {dict(zip(fields, key))} holds more than one run per (strength, seed): {points}")
    return pd.concat([primary_statistics(group, ev).assign(**dict(zip(fields, key))) for key, group in groups.items()],
                     ignore_index=True)


def primary_statistics(runs: list[Run], ev: EvalSettings) -> pd.DataFrame:
    """SHAPE_STATISTICS of runs that differ only in strength and seed: columns strength, seed and those."""
    key = ["strength", "seed"]
    acc = transfer_table(runs, ev).pivot_table(index=key, columns="layer", values="linear")
    inv = invariance_table(runs, ev)
    inv = inv[inv["eval"] == "train"].pivot_table(index=key, columns="layer", values="invariance")
    er = erank_ratio(dimension_table(runs, ev)).set_index(key)
    tang = tangent_table(runs, ev)
    tang = tang[(tang["d_mode"] == "fixed") & (tang["r_mode"] == "erank")].set_index(key)
    ret = retention_scores(retention_table(runs, ev)).pivot_table(index=key, columns="layer", values="retention")
    out = pd.DataFrame({"acc_h": acc["h"], "C1": acc["z0"] - acc["z"], "C1_raw": acc["h"] - acc["z"],
                        "I_h": inv["h"], "C2": inv["z"] - inv["z0"], "C2_raw": inv["z"] - inv["h"],
                        "log_erank_h": np.log(er["h"]), "C3": er["log_learned"], "C3_raw": er["log_ratio"],
                        "C4": tang["locality_gap"], "retention_h": ret["h"], "C5": ret["z0"] - ret["z"],
                        "C5_raw": ret["h"] - ret["z"]})
    return out.reset_index()


# --- B4: training progress ---------------------------------------------------------------------------

PROGRESS_STATISTICS = {"C1_knn": "learned kNN gap acc(z0) - acc(z)", "C2": "learned I(z) - I(z0), s_eval = s_train",
                       "C3": "log(erank(z) / erank(z0))"}


def progress_table(runs: list[Run], ev: EvalSettings) -> pd.DataFrame:
    """B4: C1's learned kNN gap, C2's and C3's primary statistics (learned parts, against each snapshot's own g0)
    of each run at each of its kept epochs (the snapshots after 25% and 50% of training, and the end), computed
    exactly as the claim pages compute them (the same features, views, kNN and estimators) but nothing else.
    Columns: strength, seed, epoch, progress (epoch / epochs), and PROGRESS_STATISTICS."""
    def rows_of(run):
        n_test = _sizes(run, ev)[0]
        n_probe = ev.probe_test_size(len(load_dataset(run.config.dataset).y_test))
        train, test = clean_features(run, "train", ev.n_probe_train), clean_features(run, "test", n_test)
        probe_test = clean_features(run, "test", n_probe)
        views = view_features(run, n_test, run.config.strength, ev.n_views, family=run.config.augment_family)
        knn = {k: probes.knn_accuracy(train[k], train["y"], probe_test[k], probe_test["y"], ev.knn_k)
               for k in ("z", "z0")}
        inv = {k: geometry.invariance(views[k])["invariance"] for k in ("z", "z0")}
        erank = {k: geometry.effective_rank(test[k]) for k in ("z", "z0")}
        return [{"C1_knn": knn["z0"] - knn["z"], "C2": float(inv["z"] - inv["z0"]),
                 "C3": float(np.log(erank["z"] / erank["z0"]))}]

    frames = []
    for epoch in sorted({e for r in runs for e in r.epochs}):
        at = [r.at(epoch) for r in runs if epoch in r.epochs]
        frame = _table(at, "progress", ev, ("n_test", "n_probe_train", "n_probe_test", "n_views", "knn_k"), rows_of)
        frames.append(frame.assign(epoch=epoch, progress=epoch / at[0].config.epochs))
    return pd.concat(frames, ignore_index=True)
