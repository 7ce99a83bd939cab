"""Glue helpers: every number and verdict a page cites goes through here (myst-nb `glue`)."""
from __future__ import annotations

from sslgeo_lib.stats import ClaimResult


def _glue(key: str, value, display: bool = False) -> None:
    from myst_nb import glue

    glue(key, value, display=display)


def glue_claim(key: str, result: ClaimResult) -> None:
    """Glue `<key>_verdict`, `<key>_statistic`, `<key>_ci` (estimate [low, high]) and `<key>_seeds`."""
    values = {f"{key}_verdict": result.verdict_text(), f"{key}_statistic": result.statistic,
              f"{key}_ci": result.ci_text(), f"{key}_seeds": str(result.n_seeds)}
    for k, v in values.items():
        _glue(k, v)


def glue_value(key: str, value, fmt: str = "{:.3f}") -> None:
    """Glue one formatted number (or any value formatted by `fmt`)."""
    _glue(key, fmt.format(value))


def read_glue(notebook_path) -> dict[str, str]:
    """The glued values of an executed notebook (e.g. a papermill output), as their plain-text forms."""
    import ast

    import nbformat

    out = {}
    for cell in nbformat.read(notebook_path, as_version=4).cells:
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
