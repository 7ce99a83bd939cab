"""Whole sweeps, above the executors: a preset's runs (each loaded or trained by `executor.train_runs`), checked
before anything trains, and descriptions of the runs (tables, curves, did they learn, the learned gate)."""
from __future__ import annotations

import os

import pandas as pd

from sslgeo_lib import monitor, probes  # by module: tests spy on the kNN protocol and the probe
from sslgeo_lib.config import EvalSettings, RunConfig
from sslgeo_lib.data import load_dataset
from sslgeo_lib.embed import encode, exact_fp32, feature_device, split_indices
from sslgeo_lib.executor import resolve_executor, train_runs
from sslgeo_lib.presets import Preset
from sslgeo_lib.runs import check_fits
from sslgeo_lib.stats import learned_gate
from sslgeo_lib.store import Run, check_store, find_entry
from sslgeo_lib.training.loop import default_device

GPU_PRESETS = ("gpu-lite", "gpu")  # ResNet-18 on the whole training set: days on a CPU


def check_preset(preset: Preset, allow_cpu: bool | None = None) -> None:
    """Before a sweep trains anything: the preset's evaluation sizes fit its data (n_test, n_anchor, n_id,
    n_probe_train), and a GPU preset has a GPU unless `allow_cpu` (None: $SSLGEO_ALLOW_CPU == "1") says to train
    it on the CPU anyway (`sweep` skips the device check when Ray's workers train). A ValueError names the number
    that does not fit and what is accepted."""
    data = load_dataset(preset.base.dataset)
    allow = allow_cpu if allow_cpu is not None else os.environ.get("SSLGEO_ALLOW_CPU") == "1"
    if preset.name in GPU_PRESETS and default_device().type == "cpu" and not allow:
        raise ValueError(f"preset {preset.name} trains ResNet-18 on all {len(data.y_train):,} training images and "
                         f"needs a GPU; this machine has none (a run would take many hours). Use --preset cpu (sized "
                         f"for 2 CPU cores), or gpu-lite / gpu on a machine with a GPU; --allow-cpu "
                         f"(SSLGEO_ALLOW_CPU=1) trains it here anyway")
    ev = preset.eval
    ev.anchor_size(len(data.y_test)), ev.id_size(len(data.y_test))  # n_test, n_anchor, n_id against the test split
    if ev.n_probe_train > len(data.y_train):
        raise ValueError(f"n_probe_train={ev.n_probe_train:,} is larger than the {len(data.y_train):,} training images "
                         f"of {preset.base.dataset} (use n_probe_train <= {len(data.y_train):,}, or 0 for each run's "
                         f"own training subset)")


def sweep(preset: Preset, progress: bool = True, configs: list[RunConfig] | None = None,
          executor: str | None = None, address: str | None = None, allow_cpu: bool | None = None,
          jobs: int | None = None) -> list[Run]:
    """Every run of the preset's sweep (strengths outer, seeds inner; or of `configs`, e.g. the preset's
    `shape_configs()`), training only those not yet stored.
    `executor` ("local" or "ray"; None: $SSLGEO_EXECUTOR, else local) says where missing runs train, and
    `address` which Ray cluster (see `executor.train_on_ray`), `jobs` how many runs the local executor trains at
    once (None: $SSLGEO_JOBS, else half the cores; see `executor.resolve_jobs`).
    Before any run trains, everything that can be known is checked: the store (when a run is missing), every
    missing run against its data (`check_fits`), the evaluation sizes and the device (`check_preset`, with
    `allow_cpu`), so impossible work fails now, not after training, and writes nothing."""
    executor = resolve_executor(executor)
    configs = preset.configs() if configs is None else list(dict.fromkeys(configs))  # each run once
    missing = [c for c in configs if find_entry(c) is None]
    if missing:
        check_store(missing[0])
    # stored runs are read on any machine, and Ray's workers bring their own devices
    check_preset(preset, allow_cpu if missing and executor == "local" else True)
    for cfg in missing:
        check_fits(cfg)
    return list(train_runs(configs, executor, address, progress, jobs).values())


def run_table(runs: list[Run]) -> pd.DataFrame:
    """One row per run: sweep point, final loss and kNN accuracy, throughput, wall time, where it ran."""
    rows = []
    for r in runs:
        m, p = r.metrics, r.provenance
        rows.append({"run": r.id, "strength": r.config.strength, "seed": r.config.seed,
                     "epochs": len(m["epoch"]), "final loss": m["loss"][-1], "knn": m["knn"][-1],
                     "images/s": m["images_per_s"], "train min": m["train_seconds"] / 60,
                     "precision": p["precision"], "device": p["device_name"]})
    return pd.DataFrame(rows)


def training_curves(runs: list[Run]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(loss per epoch, kNN accuracy per monitored epoch), tidy, with strength and seed."""
    loss, knn = [], []
    for r in runs:
        s, k, m = r.config.strength, r.config.seed, r.metrics
        loss += [{"strength": s, "seed": k, "epoch": e, "loss": v} for e, v in zip(m["epoch"], m["loss"])]
        knn += [{"strength": s, "seed": k, "epoch": e, "knn": v} for e, v in zip(m["knn_epoch"], m["knn"])]
    return pd.DataFrame(loss), pd.DataFrame(knn)


def learning_table(runs: list[Run], ev: EvalSettings, device=None) -> pd.DataFrame:
    """Did each run's encoder learn? Per run, on the kNN protocol of `ev` (`monitor`): the accuracy of its h, the same
    for its untrained encoder (same seed, BatchNorm statistics re-estimated on the bank) and the paired gain;
    cached with the run. Columns: strength, seed, method, augment_family, projector_depth, knn, knn_untrained,
    gain."""
    device = feature_device(device)
    rows = []
    for r in runs:
        def compute(r=r):
            with exact_fp32():
                knn = monitor.knn_of_h(r.model(device).encoder, r.config.dataset, device, ev)
            return [{"knn": knn, "knn_untrained": monitor.untrained_knn(r.config, ev, device)}]

        settings = {"bank": ev.protocol_bank, "queries": ev.protocol_queries, "device": device.type}
        (row,) = r.cached("learning", settings, compute, ("monitor.py", "embed.py", "probes.py"))
        c = r.config
        rows.append({"strength": c.strength, "seed": c.seed, "method": c.method, "augment_family": c.augment_family,
                     "projector_depth": c.projector_depth, **row, "gain": row["knn"] - row["knn_untrained"]})
    return pd.DataFrame(rows)


def untrained_baseline(preset: Preset) -> pd.DataFrame:
    """Randomly initialised encoders, one per seed of the preset, BatchNorm statistics re-estimated on the kNN
    protocol's bank (`monitor.untrained_encoder`): the protocol's kNN accuracy (`monitor.untrained_knn`, the
    learned gate's floor) and the linear-probe accuracy of h (the C1 protocol). The floor that a trained encoder
    must beat. Columns: seed, knn, linear."""
    device, ev = default_device(), preset.eval
    data = load_dataset(preset.base.dataset)
    rows = []
    for seed in preset.seeds:
        cfg = preset.base.replace(seed=seed)
        encoder = monitor.untrained_encoder(cfg, ev, device)
        train = split_indices(cfg, "train", data.y_train, ev.n_probe_train)  # the probe images of trained runs
        test = split_indices(cfg, "test", data.y_test, ev.test_size(len(data.y_test)))
        h_train = encode(encoder, data.x_train[train], device)
        h_test = encode(encoder, data.x_test[test], device)
        rows.append({"seed": seed, "knn": monitor.untrained_knn(cfg, ev, device),
                     "linear": probes.linear_probe(h_train, data.y_train[train], h_test, data.y_test[test],
                                            ev.probe_c_grid, ev.probe_val_fraction, seed)["accuracy"]})
    return pd.DataFrame(rows)


def gate_of(runs: list[Run], ev: EvalSettings, device=None):
    """The learned gate (rule v3, `stats.learned_gate`) of runs that differ only in strength and seed, from their
    `learning_table`."""
    return learned_gate(learning_table(runs, ev, device))


def shape_gate(runs: list[Run], ev: EvalSettings, reference_depth: int = 2, device=None):
    """C6's learned gate: a strength passes where both the depth-0 runs and the reference runs (depth
    `reference_depth` at its smallest width, as `claims.shape_verdicts` compares) learned."""
    ref = [r for r in runs if r.config.projector_depth == reference_depth]
    width = min(r.config.projector_width for r in ref)
    zero = gate_of([r for r in runs if r.config.projector_depth == 0], ev, device)
    return zero.both(gate_of([r for r in ref if r.config.projector_width == width], ev, device))
