"""Glue helpers: every number and verdict a page cites goes through here (myst-nb `glue`)."""
from __future__ import annotations

from sslgeo_lib.stats import ClaimResult


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


def glue_page(prefix: str, preset_name: str, n_runs: int, verdicts: dict[str, ClaimResult], subject: str) -> None:
    """Everything a claim page cites: its verdicts (`glue_verdicts`), the reading of its primary result (one
    computed sentence, `claims.reading`, under `<prefix>_reading`), the preset, the number of runs and the
    verdict rule's version."""
    from sslgeo_lib.claims import reading
    from sslgeo_lib.stats import RULE_VERSION

    glue_verdicts(prefix, verdicts)
    _glue(f"{prefix}_reading", reading(verdicts["primary"], subject))
    _glue(f"{prefix}_preset", preset_name)
    _glue(f"{prefix}_n_runs", str(n_runs))
    _glue(f"{prefix}_rule", RULE_VERSION)


def glue_figure(key: str, fig) -> None:
    """Glue a matplotlib figure (pasted elsewhere with {glue:figure}); the figure still shows where it was made."""
    _glue(key, fig)


def glue_value(key: str, value, fmt: str = "{:.3f}") -> None:
    """Glue one formatted number (or any value formatted by `fmt`)."""
    _glue(key, fmt.format(value))


def read_glue(notebook_path) -> dict[str, str]:
    """The glued values of an executed notebook (e.g. a papermill output), as their plain-text forms. A notebook
    whose code cells hold no outputs at all (never executed, or a copy saved without them, as a book build's
    `_build/.../executed` copies are) is a ValueError, not an empty result."""
    import ast

    import nbformat

    out = {}
    cells = nbformat.read(notebook_path, as_version=4).cells
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
    import shlex

    stem = notebook.rsplit(".", 1)[0]
    parts = [f"papermill book/{notebook} {stem}.out.ipynb"]
    for name, value in values.items():
        text = value if isinstance(value, str) else repr(value)
        parts.append(f"-p {name} {shlex.quote(text)}")
    return " \\\n    ".join(parts)


def glue_rerun(prefix: str, notebook: str, values: dict) -> None:
    """Glue `<prefix>_rerun`: a Markdown code block with the command (`rerun_command`), pasted by each page's
    re-run box ({glue:md} with format myst); and `<prefix>_rerun_command`, the command as plain text."""
    from IPython.display import Markdown

    command = rerun_command(notebook, values)
    _glue(f"{prefix}_rerun", Markdown(f"```bash\n{command}\n```"))
    _glue(f"{prefix}_rerun_command", command)
