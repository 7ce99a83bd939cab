"""Which CPU training recipe makes the encoder learn: candidate recipes trained on equal numbers of source images,
each against the same seed's untrained encoder (minutes and images/s say what each costs).

    python benchmarks/recipe.py                      # screen every candidate (2 seeds), then the chosen recipe
    python benchmarks/recipe.py --stage screen       # only the screening
    python benchmarks/recipe.py --stage final        # only the chosen recipe: s = 0.5 and 1, and its curve
    python benchmarks/recipe.py --stage objectives   # B1's objectives on the chosen recipe, each at its own steps
    python benchmarks/recipe.py --quick              # smoke size (CI): every column, in about a minute
    python benchmarks/recipe.py --markdown           # no training: the rows so far as a markdown table

Per recipe and seed it prints the kNN accuracy of h (cosine, k = 20, a 10,000-image class-balanced training bank,
2,000 test queries: `sslgeo_lib.monitor`'s protocol at EvalSettings' sizes; --quick: the smoke preset's), the same
for the untrained encoder of the same seed (BatchNorm statistics re-estimated on the bank) and the gain over it, the
linear-probe accuracy of h (trained on the bank, tested on the queries), training images/s and minutes. Screening:
every candidate changes one thing of today's recipe (the cpu preset before this benchmark), at the same number of
source images per run, s = 0.5 (a wider or deeper encoder spends more arithmetic on them: compare its minutes). A
candidate whose loss diverges is a row with kNN NaN, marked diverged, and the benchmark goes on.
Final: the chosen recipe (`CHOSEN`) at s = 0.5 and s = 1, and its curve, kNN against training minutes (separate
runs at several budgets, each with its whole schedule), printed and drawn to OUT/recipe_curve.png.
Objectives: B1's objectives (VICReg, Barlow Twins, BYOL) on the chosen recipe at s = 1, each with the recipe B1
uses (`presets.BeyondGrid.recipes`) on every seed, and the alternatives of `OBJECTIVE_ALTERNATIVES` on the first
seed: an objective's step is set by its learning rate, since its loss's constant factor scales its gradient.
Rows are appended to OUT/rows.jsonl as each run ends, and a row already there (same config, training code and kNN
protocol) is not trained again (a stopped benchmark resumes).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from sslgeo_lib.config import EvalSettings, RunConfig
from sslgeo_lib.data import load_dataset
from sslgeo_lib.embed import encode, exact_fp32
from sslgeo_lib.monitor import protocol_indices, untrained_knn
from sslgeo_lib.presets import CPU_RECIPE, PRESETS, recipe_label
from sslgeo_lib.probes import knn_accuracy, linear_probe
from sslgeo_lib.store import code_hash
from sslgeo_lib.training.loop import train

# Today's recipe: the cpu preset's training before this benchmark (10,000 images x 12 epochs, batch 256, SGD at
# base lr 0.06 with cosine decay and no warm-up, temperature 0.5, shared BatchNorm, weight decay on everything).
TODAY = dict(n_train=10_000, batch_size=256, lr=0.06, temperature=0.5, optimizer="sgd", warmup_epochs=0,
             weight_decay=5e-4, decay_scope="all", view_batchnorm="shared", encoder="small_cnn", encoder_width=32)
SCREEN_IMAGES = 100_000  # source images per screening run (10,000 x 10 epochs)

# One change each against TODAY; "epochs" is set from the budget and n_train unless given.
CANDIDATES: dict[str, dict] = {
    "today": {},
    "images 25k x 4": dict(n_train=25_000),
    "images 50k x 2": dict(n_train=50_000),
    "batch 128": dict(batch_size=128),
    "lr 0.12": dict(lr=0.12),
    "lr 0.24": dict(lr=0.24),
    "lr 0.24 + warm-up": dict(lr=0.24, warmup_epochs=1),
    "temperature 0.2": dict(temperature=0.2),
    "temperature 0.1": dict(temperature=0.1),
    "per-view BatchNorm": dict(view_batchnorm="per_view"),
    "no decay on BN and biases": dict(decay_scope="weights"),
    "LARS (solo-learn)": dict(optimizer="lars", lr=0.4, weight_decay=1e-5, decay_scope="weights", warmup_epochs=1,
                              temperature=0.2),
    "residual encoder": dict(encoder="small_resnet"),
    "width 48": dict(encoder_width=48),
}
# The recipe the cpu preset adopts (presets.CPU_RECIPE, its one spelling), with its budget.
CHOSEN = dict(TODAY, warmup_epochs=0, **CPU_RECIPE)
CURVE_FRACTIONS = (0.25, 0.5, 0.75, 1.0)  # the chosen recipe's epochs at each point of its curve
COLUMNS = ("stage", "recipe", "strength", "seed", "n_train", "epochs", "knn", "knn_untrained", "gain", "linear",
           "images_per_s", "minutes")


def row_key(cfg: RunConfig, ev: EvalSettings) -> str:
    """What a stored row must match to be reused: the config, the training code and the kNN protocol (of `ev`)."""
    return json.dumps({"config": cfg.to_dict(), "code": code_hash(),
                       "protocol": [ev.protocol_bank, ev.protocol_queries]},
                      sort_keys=True)


def run_row(stage: str, name: str, cfg: RunConfig, ev: EvalSettings) -> dict:
    """Train `cfg` (in a temporary folder, no monitor) and measure it against its untrained encoder; a run whose
    loss diverges is a row with NaN accuracies and diverged=True."""
    data = load_dataset(cfg.dataset)
    bank, queries = protocol_indices(data, ev)
    head = dict(stage=stage, recipe=name, strength=cfg.strength, seed=cfg.seed,
                n_train=cfg.n_train or len(data.y_train),
                epochs=cfg.epochs, config=cfg.to_dict(), key=row_key(cfg, ev))
    with tempfile.TemporaryDirectory(prefix="sslgeo-recipe-") as work:
        try:
            result = train(cfg, Path(work), progress=sys.stderr.isatty())
        except FloatingPointError as exc:
            nan = float("nan")
            return dict(head, knn=nan, knn_untrained=nan, gain=nan, linear=nan, images_per_s=nan, minutes=nan,
                        diverged=str(exc))
    encoder = result.model.encoder
    with exact_fp32():  # as the learned gate measures (sweep.learning_table), and untrained_knn the floor
        h_bank = encode(encoder, data.x_train[bank], result.device)
        h_query = encode(encoder, data.x_test[queries], result.device)
    linear = linear_probe(h_bank, data.y_train[bank], h_query, data.y_test[queries], seed=cfg.seed)["accuracy"]
    knn = knn_accuracy(h_bank, data.y_train[bank], h_query, data.y_test[queries])  # knn_of_h on the features above
    floor = untrained_knn(cfg, ev, result.device)
    m = result.metrics
    return dict(head, knn=knn, knn_untrained=floor, gain=knn - floor, linear=linear,
                images_per_s=m["images_per_s"], minutes=m["train_seconds"] / 60)


def screening(seeds, images: int, names=None) -> list[tuple[str, str, RunConfig]]:
    out = []
    for name, change in CANDIDATES.items():
        if names and name not in names:
            continue
        recipe = dict(TODAY, **change)
        epochs = recipe.pop("epochs", None) or max(1, images // recipe["n_train"])
        out += [("screen", name, RunConfig(**recipe, epochs=epochs, strength=0.5, seed=k)) for k in seeds]
    return out


# B1's objectives: beside each objective's recipe in the presets (presets.BeyondGrid.recipes, trained on every seed),
# the alternatives measured on the first seed (RunConfig fields on the chosen recipe). With plain SGD a loss's constant
# factor scales its step: against lightly's CIFAR recipe (SGD, lr 0.06 x batch/128) SimCLR's 0.06 is a 0.5x step, and
# the objectives' matching steps are VICReg 0.06 (its loss is lightly's), Barlow Twins 0.6 (ours is 0.1 x lightly's)
# and BYOL 0.015 (ours is the symmetrised sum, 4 x lightly's); VICReg diverged at 0.06 and 0.03 on an earlier recipe.
# solo-learn's CIFAR optimisers for the two (LARS, whose layer-wise trust ratio makes the step nearly independent of
# the loss's constant factor; warm-up scaled from its 10 of 1,000 epochs to 1 of 7; our Barlow Twins loss already
# carries its scale_loss 0.1). The last of each: its best step at twice the recipe's epochs, what learning costs
# where the recipe's budget is too short for it.
LARS_BARLOW = dict(optimizer="lars", lr=0.3, weight_decay=1e-4, decay_scope="weights", warmup_epochs=1)
LARS_BYOL = dict(optimizer="lars", lr=1.0, weight_decay=1e-5, decay_scope="weights", warmup_epochs=1)
OBJECTIVE_ALTERNATIVES: dict[str, tuple[dict, ...]] = {
    "vicreg": (dict(lr=0.02), dict(lr=0.01), dict(lr=0.02, epochs=2 * CPU_RECIPE["epochs"])),
    "barlow_twins": (dict(lr=0.06), dict(lr=0.6), dict(lr=2.0), dict(lr=0.6, view_batchnorm="per_view"), LARS_BARLOW,
                     dict(LARS_BARLOW, epochs=2 * CPU_RECIPE["epochs"])),
    "byol": (dict(lr=0.06), dict(lr=0.015), dict(lr=0.2), dict(lr=0.06, view_batchnorm="per_view"), LARS_BYOL,
             dict(lr=0.06, epochs=2 * CPU_RECIPE["epochs"])),
}


def objectives(seeds) -> list[tuple[str, str, RunConfig]]:
    """Each B1 objective on the chosen recipe at s = 1: its presets' recipe on every seed, then the alternatives on
    the first seed (one already the presets' is not repeated)."""
    base = RunConfig(**CHOSEN).replace(strength=1.0)
    grid = PRESETS["cpu"].beyond
    out = []
    for rank, pick in ((0, list(seeds)), (1, [seeds[0]])):
        for method, alternatives in OBJECTIVE_ALTERNATIVES.items():
            chosen = grid.recipe(method, base)
            for fields in ([chosen] if rank == 0 else [f for f in alternatives
                                                       if base.replace(**f) != base.replace(**chosen)]):
                cfg = base.replace(method=method, **fields)
                out += [("objective", recipe_label(cfg, fields), cfg.replace(seed=k)) for k in pick]
    return out


FINAL_EPOCHS = 9  # the budget the final stage measures: 450,000 source images, 5 min a run at 1,500 images/s


def final(seeds, scale: float = 1.0) -> list[tuple[str, str, RunConfig]]:
    """The chosen recipe at the largest budget a run may take (FINAL_EPOCHS), s = 0.5 and 1, and its frontier:
    separate runs at fractions of that budget (CURVE_FRACTIONS), each with its whole schedule, from which the
    preset takes the knee (presets.CPU_RECIPE's epochs)."""
    recipe = dict(CHOSEN)
    recipe.pop("epochs")
    epochs = max(2, round(FINAL_EPOCHS * scale))
    warm = min(recipe.pop("warmup_epochs"), epochs - 1)
    base = RunConfig(**recipe, epochs=epochs, warmup_epochs=warm)
    out = [("final", "chosen", base.replace(strength=s, seed=k)) for s in (0.5, 1.0) for k in seeds]
    for f in CURVE_FRACTIONS[:-1]:  # the last point is the final run of seed 0 at s = 0.5
        e = max(2, round(epochs * f))
        out.append(("curve", f"chosen, {e} epochs", base.replace(epochs=e, warmup_epochs=min(warm, e - 1),
                                                                  strength=0.5, seed=seeds[0])))
    return out


def print_row(row: dict) -> None:
    print(f"{row['stage']:6s} {row['recipe']:28s} s={row['strength']:<4g} seed={row['seed']}  "
          f"{row['n_train']:>6,} x {row['epochs']:<3d} knn {row['knn']:.3f}  untrained {row['knn_untrained']:.3f}  "
          f"gain {row['gain']:+.3f}  linear {row['linear']:.3f}  {row['images_per_s']:,.0f} img/s  "
          f"{row['minutes']:.2f} min" + ("  DIVERGED" if row.get("diverged") else ""), flush=True)


def summary(rows: list[dict]) -> None:
    """Mean over seeds per (stage, recipe, strength), best first within a stage."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["stage"], r["recipe"], r["strength"]), []).append(r)
    print("\nmean over seeds (n): knn, untrained, gain, linear, img/s, minutes")
    for key in sorted(groups, key=lambda k: (k[0], -np.mean([r["knn"] for r in groups[k]]))):
        g = groups[key]
        mean = {c: float(np.mean([r[c] for r in g])) for c in ("knn", "knn_untrained", "gain", "linear",
                                                                  "images_per_s", "minutes")}
        print(f"{key[0]:6s} {key[1]:28s} s={key[2]:<4g} (n={len(g)})  knn {mean['knn']:.3f}  untrained "
              f"{mean['knn_untrained']:.3f}  gain {mean['gain']:+.3f}  linear {mean['linear']:.3f}  "
              f"{mean['images_per_s']:,.0f} img/s  {mean['minutes']:.2f} min", flush=True)


def markdown(rows: list[dict]) -> str:
    """The rows as a markdown table, one line per (stage, recipe, strength): means over seeds, and each seed's kNN."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["stage"], r["recipe"], r["strength"]), []).append(r)
    out = ["| stage | recipe | s | images x epochs | seeds | kNN of h (each seed) | untrained | gain | linear | img/s "
           "| min |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (stage, name, s), g in groups.items():
        mean = {c: float(np.mean([r[c] for r in g])) for c in ("knn", "knn_untrained", "gain", "linear",
                                                                  "images_per_s", "minutes")}
        each = ", ".join(f"{r['knn']:.3f}" for r in sorted(g, key=lambda r: r["seed"]))
        out.append(f"| {stage} | {name} | {s:g} | {g[0]['n_train']:,} x {g[0]['epochs']} | {len(g)} | "
                   f"{mean['knn']:.3f} ({each}) | {mean['knn_untrained']:.3f} | {mean['gain']:+.3f} | "
                   f"{mean['linear']:.3f} | {mean['images_per_s']:,.0f} | {mean['minutes']:.2f} |")
    return "\n".join(out)


def curve_figure(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = sorted((r["minutes"], r["knn"], r["knn_untrained"]) for r in rows
                 if r["stage"] in ("curve", "final") and r["strength"] == 0.5 and r["seed"] == min(
                     x["seed"] for x in rows if x["stage"] == "final"))
    if not pts:
        return
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label="chosen recipe, s = 0.5")
    ax.axhline(float(np.mean([p[2] for p in pts])), ls="--", color="gray", label="untrained encoder")
    ax.set(xlabel="training minutes per run", ylabel="kNN accuracy of h", title="kNN against training time")
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=("all", "screen", "final", "objectives"), default="all")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--images", type=int, default=SCREEN_IMAGES, help="source images per screening run")
    ap.add_argument("--only", nargs="+", help="screen only these candidates (names as printed)")
    ap.add_argument("--out", type=Path, default=Path("results/recipe"), help="rows.jsonl and the curve figure")
    ap.add_argument("--markdown", action="store_true", help="print the stored rows as a markdown table and stop")
    ap.add_argument("--quick", action="store_true",
                    help="smoke size: 2 candidates on 1,000 images, the chosen recipe at 2 epochs, "
                         "the smoke preset's kNN protocol")
    args = ap.parse_args(argv)
    unknown = set(args.only or ()) - set(CANDIDATES)
    if unknown:
        ap.error(f"unknown candidate(s) {sorted(unknown)}; accepted: {', '.join(CANDIDATES)}")
    plan, ev = [], PRESETS["smoke"].eval if args.quick else EvalSettings()
    if args.quick:
        small = dict(n_train=1000, encoder_width=8, projector_width=64, projector_out=16)
        plan = [(st, name, cfg.replace(**small, epochs=2, warmup_epochs=min(cfg.warmup_epochs, 1)))
                for st, name, cfg in screening([0], 2000, ["today", "per-view BatchNorm"]) + final([0], 0.05)
                + objectives([0])[:1]]
    else:
        if args.stage in ("all", "screen"):
            plan += screening(args.seeds, args.images, args.only)
        if args.stage in ("all", "final"):
            plan += final(args.seeds)
        if args.stage in ("all", "objectives"):
            plan += objectives(args.seeds)
    args.out.mkdir(parents=True, exist_ok=True)
    store = args.out / ("rows-quick.jsonl" if args.quick else "rows.jsonl")
    done = [json.loads(line) for line in store.read_text().splitlines()] if store.is_file() else []
    if args.markdown:
        print(markdown(done))
        return
    seen = {r.get("key") for r in done}
    rows = [r for r in done if r.get("key") in {row_key(c, ev) for _, _, c in plan}]
    for r in rows:
        print_row(r)
    t0 = time.perf_counter()
    for stage, name, cfg in plan:
        if row_key(cfg, ev) in seen:
            continue
        seen.add(row_key(cfg, ev))
        row = run_row(stage, name, cfg, ev)
        with store.open("a") as f:
            f.write(json.dumps(row) + "\n")
        rows.append(row)
        print_row(row)
    summary(rows)
    curve_figure(rows, args.out / "recipe_curve.png")
    print(f"\n{len(rows)} rows ({time.perf_counter() - t0:.0f} s this call); columns: {', '.join(COLUMNS)}")


if __name__ == "__main__":
    main()
