"""Glue helpers: every number and verdict a page cites goes through here (myst-nb `glue`)."""
from __future__ import annotations

import ast
import json
import shlex
from pathlib import Path

import nbformat
import pandas as pd

from sslgeo_lib.claims import reading
from sslgeo_lib.stats import GATE_MIN_GAIN, RULE_VERSION, ClaimResult, Gate


def _glue(key: str, value, display: bool = False) -> None:
    from myst_nb import glue

    glue(key, value, display=display)


def claim_key(prefix: str, name: str) -> str:
    """The glue key of verdict `name` of a page: "primary" -> prefix (e.g. "c2"), other names -> "c2_<name>"."""
    return prefix if name == "primary" else f"{prefix}_{name}"


def glue_claim(key: str, result: ClaimResult) -> None:
    """Glue `<key>_verdict` (the ranged verdict text), `<key>_statistic`, `<key>_ci` (estimate [low, high]),
    `<key>_covers` (what the interval covers), `<key>_seeds` and `<key>_delta`."""
    values = {f"{key}_verdict": result.verdict_text(), f"{key}_statistic": result.statistic,
              f"{key}_ci": result.ci_text(), f"{key}_covers": result.covers, f"{key}_seeds": str(result.n_seeds),
              f"{key}_delta": f"{result.delta:.3g}"}
    for k, v in values.items():
        _glue(k, v)


def glue_verdicts(prefix: str, verdicts: dict[str, ClaimResult]) -> None:
    """Glue every verdict of a page under keys derived from its name (see `claim_key`)."""
    for name, result in verdicts.items():
        glue_claim(claim_key(prefix, name), result)


def glue_page(prefix: str, preset_name: str, n_runs: int, verdicts: dict[str, ClaimResult], subject: str,
              labels: dict[str, str] | None = None, gate: Gate | None = None) -> None:
    """Everything a claim page cites: its verdicts (`glue_verdicts`), the reading of its primary result (one
    computed sentence, `claims.reading`, under `<prefix>_reading`), the preset, the number of runs, the verdict
    rule's version, the table of its readings (`<prefix>_table`, Markdown: one row per `labels` entry, name ->
    what the row reads, in that order; every verdict when None) and the learned gate in words (`<prefix>_gate`)."""

    glue_verdicts(prefix, verdicts)
    _glue(f"{prefix}_reading", reading(verdicts["primary"], subject))
    _glue(f"{prefix}_preset", preset_name)
    _glue(f"{prefix}_n_runs", str(n_runs))
    _glue(f"{prefix}_rule", RULE_VERSION)
    glue_markdown(f"{prefix}_table", readings_table(verdicts, labels))
    _glue(f"{prefix}_gate", gate_sentence(gate))


def readings_table(verdicts: dict[str, ClaimResult], labels: dict[str, str] | None = None) -> str:
    """A Markdown table of a page's readings: reading, statistic, estimate [interval], verdict; one row per
    `labels` entry (verdict name -> the reading's words), every verdict in its order when None."""
    labels = labels or {name: name for name in verdicts}
    unknown = [name for name in labels if name not in verdicts]
    if unknown:
        raise ValueError(f"labels name readings the page does not have: {unknown}; it has {list(verdicts)}")
    rows = ["| reading | statistic | estimate [interval] | verdict |", "|---|---|---|---|"]
    for name, label in labels.items():
        r = verdicts[name]
        rows.append(f"| {label} | {_cell(r.statistic)} | {r.ci_text()} | **{_cell(r.verdict_text())}** |")
    return "\n".join(rows)


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell (a literal | would end the cell)."""
    return text.replace("|", "\\|")


def gate_sentence(gate: Gate | dict | None) -> str:
    """The learned gate in words: at which strengths the encoders learned (the paired kNN gain of h over each
    run's untrained encoder, interval over seeds, excluded 0 and averaged at least GATE_MIN_GAIN) and with what
    gain, and where they did not (those strengths read "not tested"). A dict {group: Gate} (B1, B2) gives one
    clause per group."""

    rule = (f"the paired kNN gain of h over each run's own untrained encoder, whose 95% interval over seeds must "
            f"exclude 0 and whose mean must reach {GATE_MIN_GAIN:g}")
    if isinstance(gate, dict):
        parts = [f"{g}: {_gate_clauses(v)}" for g, v in gate.items() if v is not None and not v.table.empty]
        return f"Learned gate ({rule}), per group: " + "; ".join(parts) + "." if parts else \
            "The learned gate was not applied (no learning was measured)."
    if gate is None or gate.table.empty:
        return "The learned gate was not applied (no learning was measured)."
    return f"Learned gate ({rule}): {_gate_clauses(gate)}."


def _gate_clauses(gate: Gate) -> str:
    s = gate.table["strength"].tolist()
    passed = [v for v in s if gate.passed(v)]
    failed = [v for v in s if not gate.passed(v)]
    parts = []
    if passed:
        parts.append("the encoders learned at " + "; ".join(f"s = {v:g} ({gate.gain_text(v)})" for v in passed))
    if failed:
        parts.append("they did not learn at " + "; ".join(f"s = {v:g} ({gate.gain_text(v)})" for v in failed)
                     + ", so every claim there reads \"not tested\"")
    return "; ".join(parts)


def glue_markdown(key: str, text: str) -> None:
    """Glue Markdown, pasted with {glue:md} and format myst."""
    from IPython.display import Markdown

    _glue(key, Markdown(text))


def glue_figure(key: str, fig) -> None:
    """Glue a matplotlib figure (pasted elsewhere with {glue:figure}); the figure still shows where it was made."""
    _glue(key, fig)


def glue_value(key: str, value, fmt: str = "{:.3f}") -> None:
    """Glue one formatted number (or any value formatted by `fmt`)."""
    _glue(key, fmt.format(value))


def read_glue(notebook) -> dict[str, str]:
    """The glued values of an executed notebook (a path, e.g. a papermill output, or a notebook node, e.g. from
    the book's jupyter-cache), as their plain-text forms. A notebook whose code cells hold no outputs at all (never
    executed, or a copy saved without them, as a book build's `_build/.../executed` copies are) is a ValueError,
    not an empty result."""
    out = {}
    node = notebook if isinstance(notebook, nbformat.NotebookNode) else nbformat.read(notebook, as_version=4)
    cells = node.cells
    notebook_path = notebook if not isinstance(notebook, nbformat.NotebookNode) else "the notebook"
    if not any(c.get("outputs") for c in cells if c.cell_type == "code"):
        raise ValueError(f"{notebook_path} holds no outputs (not executed, or saved without them), so it has no glued "
                         f"values; read a notebook executed by papermill (papermill IN.ipynb OUT.ipynb -p ...), or the "
                         f"book's jupyter-cache")
    for cell in cells:
        for o in cell.get("outputs", []):
            meta = o.get("metadata", {}).get("scrapbook")
            if meta:
                text = o["data"].get(meta["mime_prefix"] + "text/plain")
                if text is not None:
                    try:
                        text = ast.literal_eval(text)
                    except (ValueError, SyntaxError):
                        pass
                    out[meta["name"]] = text
    return out


def rerun_command(notebook: str, values: dict) -> str:
    """The papermill command that re-runs book/`notebook` with `values` (name -> value, e.g. from
    presets.resolved_parameters), each passed with -p as papermill reads it (lists as Python literals)."""

    stem = notebook.rsplit(".", 1)[0]
    parts = [f"papermill book/{notebook} {stem}.out.ipynb"]
    for name, value in values.items():
        text = value if isinstance(value, str) else repr(value)
        parts.append(f"-p {name} {shlex.quote(text)}")
    return " \\\n    ".join(parts)


def glue_rerun(prefix: str, notebook: str, values: dict) -> None:
    """Glue `<prefix>_rerun`: a Markdown code block with the command (`rerun_command`), pasted by each page's
    re-run box ({glue:md} with format myst); and `<prefix>_rerun_command`, the command as plain text."""
    command = rerun_command(notebook, values)
    glue_markdown(f"{prefix}_rerun", f"```bash\n{command}\n```")
    _glue(f"{prefix}_rerun_command", command)


def benchmark_rows(stage: str, path=None):
    """The stored rows of `benchmarks/recipe.py` of one stage (e.g. "objective": B1's steps), as a table of means
    over seeds per recipe and strength: seeds, kNN of h, its untrained encoder's, the gain, the linear probe,
    images/s and minutes per run. path: the rows file (default results/recipe/rows.jsonl of the repository); an
    empty table when it does not exist (an installed package without the repository's results)."""

    default = Path(__file__).resolve().parent.parent / "results" / "recipe" / "rows.jsonl"
    path = Path(path) if path is not None else default
    columns = ["recipe", "strength", "seeds", "knn", "knn_untrained", "gain", "linear", "images_per_s", "minutes"]
    if not path.is_file():
        return pd.DataFrame(columns=columns)
    rows = pd.DataFrame([json.loads(line) for line in path.read_text().splitlines() if line.strip()])
    rows = rows[rows["stage"] == stage]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    out = rows.groupby(["recipe", "strength"], sort=False).agg(
        seeds=("seed", "nunique"), knn=("knn", "mean"), knn_untrained=("knn_untrained", "mean"), gain=("gain", "mean"),
        linear=("linear", "mean"), images_per_s=("images_per_s", "mean"), minutes=("minutes", "mean")).reset_index()
    return out[columns]
