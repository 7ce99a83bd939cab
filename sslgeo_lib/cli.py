"""The `sslgeo` command: train a preset's sweep (here or on a Ray cluster), write its verdicts as JSON, list and clean
stored runs, show a notebook's parameters, check a machine's prerequisites."""
from __future__ import annotations

import argparse
import json
import pickle
import shutil
import sys
from pathlib import Path

from sslgeo_lib.data import load_dataset
from sslgeo_lib.executor import EXECUTORS, SweepError, resolve_executor, resolve_jobs
from sslgeo_lib.fileio import write_json
from sslgeo_lib.presets import PRESETS, Preset, make_preset
from sslgeo_lib.store import clean, entry_bytes, find_entry, list_runs, runs_dir
from sslgeo_lib.summary import primary_results, verdict_record
from sslgeo_lib.sweep import GPU_PRESETS, check_preset, sweep


def _train(args) -> None:
    if resolve_executor(args.executor) == "local":
        resolve_jobs(args.jobs)  # a bad number fails before anything is checked or trained
    if args.address and resolve_executor(args.executor) != "ray":
        raise ValueError("--address names a Ray cluster: use it with --executor ray (or SSLGEO_EXECUTOR=ray)")
    p = make_preset(args.preset, strengths=args.strengths, seeds=args.seeds, epochs=args.epochs,
                    allow_large_sweep=args.allow_large_sweep)
    configs = p.configs() if args.main_only else p.all_configs()
    extra = "" if args.main_only else (
        f", and {len(configs) - len(p.configs())} more: C6's projector shapes, B1's objectives, B2's augmentation "
        f"families")
    print(f"preset {p.name}: {len(configs)} runs (strengths {list(p.strengths)} x seeds {list(p.seeds)}{extra})",
          file=sys.stderr)
    for run in sweep(p, progress=not args.quiet, configs=configs, executor=args.executor, address=args.address,
                     jobs=args.jobs,
                     allow_cpu=args.allow_cpu or None):
        m = run.metrics
        print(f"{run.id}  s={run.config.strength:<5g} seed={run.config.seed}  depth={run.config.projector_depth} "
              f"width={run.config.projector_width}  {run.config.method} {run.config.augment_family}  "
              f"loss={m['loss'][-1]:.3f}  "
              f"knn={m['knn'][-1]:.3f}  {m['images_per_s']:,.0f} img/s  {m['train_seconds'] / 60:.1f} min")


def _verdicts(args) -> None:
    p = make_preset(args.preset)
    record = verdict_record(p, primary_results(p, shapes=not args.main_only))
    if args.out:
        write_json(args.out, record)
        print(f"{len(record['claims'])} verdicts of preset {p.name} written to {args.out}", file=sys.stderr)
    else:
        print(json.dumps(record, indent=2, sort_keys=True))
    for c in record["claims"]:
        print(f"{c['claim']}: {c['verdict']:<13} {c['statistic']}: {c['estimate']} [{c['low']}, {c['high']}]; "
              f"{c['text']}", file=sys.stderr)


def _list(args) -> None:
    rows = list_runs()
    runs = [r for r in rows if r["kind"] == "run"]
    print(f"{len(runs)} run(s) in {runs_dir()}" + (f", and {len(rows) - len(runs)} foreign item(s) left alone"
                                                    if len(rows) > len(runs) else ""))
    for r in rows:
        extra = "  ".join(f"{k}={r[k]}" for k in ("encoder", "strength", "seed", "epochs", "n_train") if k in r)
        print(f"{r['id']}  {r['status']:<12}  {extra}".rstrip())


def _clean(args) -> None:
    removed = clean(other_code=args.other_code, other_data=args.other_data, ids=args.runs, everything=args.all,
                    dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {len(removed)} item(s) from {runs_dir()}" + ("".join(f"\n  {r}" for r in removed)))
    gone = {r.split("/")[0] for r in removed}
    rows = list_runs()
    for r in rows:
        if r["id"] in args.runs and r["id"] not in gone:
            print(f"kept {r['id']}, named but not removable now: {r['status']}")
    kept = [r for r in rows if r["kind"] == "run" and r["stale"] and r["id"] not in gone]
    if kept:
        print(f"kept {len(kept)} run(s) trained by other code or on other data (another checkout or SSLGEO_DATA may "
              f"use them):" + "".join(f"\n  {r['id']}  {r['origin']}" for r in kept))


ROOT = Path(__file__).resolve().parent.parent
MATHJAX = ROOT / "_vendor" / "mathjax" / "tex-svg-full.js"  # `make static` fetches it with npm
CACHE_BYTES = 40 * 2**20  # a run's cached features and measures, at most (cpu preset: about 12 MB)


def prerequisites(p: Preset, main_only: bool = False, book: bool = False) -> list[str]:
    """What training preset `p`'s runs (and with `book`, building its book) needs and this machine lacks, each
    with what to do; empty when all is there: the data, room in the run store and the cache for the runs still to
    train, a GPU for a GPU preset whose runs train here (as `sweep` checks it), and for the book npm (to fetch
    MathJax, unless `_vendor/` holds it)."""
    problems = []
    if book and not MATHJAX.is_file() and shutil.which("npm") is None:
        problems.append("npm is not on PATH: the book serves MathJax from _vendor/, which `make static` fetches with "
                        "npm (install Node.js, e.g. apt-get install npm, or copy _vendor/ from a machine that has it)")
    try:
        load_dataset(p.base.dataset)
    except (FileNotFoundError, ValueError) as exc:
        return problems + [f"the data: {exc}"]
    configs = p.configs() if main_only else p.all_configs()
    missing = [cfg for cfg in configs if find_entry(cfg) is None]
    try:
        check_preset(p, None if missing and resolve_executor() == "local" else True)
    except ValueError as exc:
        problems.append(str(exc))
    if missing:
        root = runs_dir()
        existing = next(d for d in (root, *root.parents) if d.exists())
        need = sum(entry_bytes(cfg) for cfg in missing) + CACHE_BYTES * len(configs)
        free = shutil.disk_usage(existing).free
        if free < need:
            problems.append(f"{existing} has {free / 1e9:,.1f} GB free; {len(missing)} run(s) to train and their "
                            f"caches need about {need / 1e9:,.1f} GB: free some space or point SSLGEO_RUNS elsewhere")
    return problems


def _check(args) -> None:
    p = make_preset(args.preset)
    problems = prerequisites(p, args.main_only, args.book)
    if problems:
        raise SystemExit("sslgeo check: this machine cannot build the book yet:\n"
                         + "\n".join(f"- {x}" for x in problems))
    print(f"sslgeo check: ready to {'build the book of' if args.book else 'train'} preset {p.name} (data, disk"
          + (", device" if p.name in GPU_PRESETS else "") + (", npm or MathJax" if args.book else "") + ")")


def _params(args) -> None:
    import papermill

    for name, p in papermill.inspect_notebook(args.notebook).items():
        print(f"{name}: {p['inferred_type_name']} = {p['default']}  # {p['help']}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="sslgeo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train every missing run of a preset's sweep and of its C6 shape grid")
    t.add_argument("--preset", default="auto", help=f"auto | {' | '.join(PRESETS)} (default: auto)")
    t.add_argument("--strengths", help='override the sweep\'s strengths, e.g. "[0, 0.5, 1.0]"')
    t.add_argument("--seeds", help='override the sweep\'s seeds, e.g. "[0, 1]"')
    t.add_argument("--epochs", help="override the epochs of every run")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.add_argument("--main-only", action="store_true",
                   help="only the strength x seed sweep the core chapters need "
                        "(no C6 projector shapes, B1 objectives or B2 augmentation families)")
    t.add_argument("--executor", choices=EXECUTORS, default=None,
                   help="where missing runs train: local (here, --jobs at once) or ray (one Ray task per run); "
                        "default: $SSLGEO_EXECUTOR, else local")
    t.add_argument("--jobs", type=int, default=None,
                   help="runs the local executor trains at once, each in its own process with 2 threads (the "
                        "weights do not depend on it); default: $SSLGEO_JOBS, else half this machine's cores")
    t.add_argument("--address", help="the Ray cluster to use with --executor ray (default: $RAY_ADDRESS, else "
                                     "Ray is started on this machine), e.g. auto or 10.0.0.1:6379")
    t.add_argument("--allow-large-sweep", action="store_true",
                   help="train a sweep larger than presets.MAX_SWEEP_RUNS runs")
    t.add_argument("--allow-cpu", action="store_true",
                   help="train a GPU preset (gpu-lite, gpu) on a machine without a GPU (refused otherwise: many "
                        "hours per run); SSLGEO_ALLOW_CPU=1 does the same for notebooks")
    t.set_defaults(func=_train)
    v = sub.add_parser("verdicts", help="every claim's primary verdict for a preset, as JSON with its provenance "
                                        "(trains the preset's missing main-sweep runs)")
    v.add_argument("--preset", default="auto", help=f"auto | {' | '.join(PRESETS)} (default: auto)")
    v.add_argument("--out", help="write the JSON to this file (default: standard output)")
    v.add_argument("--main-only", action="store_true", help="leave out C6 even where its runs are stored")
    v.set_defaults(func=_verdicts)
    k = sub.add_parser("check", help="check what training a preset's runs needs (the data, disk, a GPU for a GPU "
                                     "preset) and, with --book, building its book (npm or MathJax), before anything "
                                     "trains; exit status 1 with what lacks")
    k.add_argument("--preset", default="auto", help=f"auto | {' | '.join(PRESETS)} (default: auto)")
    k.add_argument("--main-only", action="store_true", help="the core edition's runs only")
    k.add_argument("--book", action="store_true", help="also what building the book needs (npm or MathJax)")
    k.set_defaults(func=_check)
    sub.add_parser("list", help="list the stored runs and their status").set_defaults(func=_list)
    c = sub.add_parser("clean", help="remove what is provably garbage: partial and corrupt runs of this code and "
                                     "data, and leftover temporary files; runs of other code or data are kept unless "
                                     "named; never anything that is not a run, nor a run being trained")
    c.add_argument("runs", nargs="*", metavar="RUN_ID", help="runs to remove, whatever they are (ids as sslgeo list "
                                                            "shows them)")
    c.add_argument("--other-code", action="store_true",
                   help="also remove runs trained by other training code (e.g. another checkout sharing the store)")
    c.add_argument("--other-data", action="store_true",
                   help="also remove runs trained on other data than SSLGEO_DATA gives here")
    c.add_argument("--all", action="store_true", help="remove every run (still only runs)")
    c.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    c.set_defaults(func=_clean)
    n = sub.add_parser("params", help="show a notebook's parameters (as papermill sees them)")
    n.add_argument("notebook")
    n.set_defaults(func=_params)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        resumes = (" A run stopped mid-training resumes from its last checkpoint (saved after every epoch) the next "
                   "time it is asked for." if args.command == "train" else "")
        parser.exit(130, f"sslgeo: interrupted.{resumes}\n")
    except KeyError as exc:
        parser.exit(2, f"sslgeo: error: {exc.args[0] if exc.args else exc}\n")
    except (ValueError, TypeError, OSError, pickle.UnpicklingError, SweepError) as exc:  # bad input, unusable
        # store or data, runs that failed on every attempt
        parser.exit(2, f"sslgeo: error: {exc}\n")


if __name__ == "__main__":
    main()
