"""The registry of pages (sslgeo_lib/pages.py) is the one spelling of each page: the notebooks, the tables of
contents and the intro's tables agree with it."""
import json
import re
from pathlib import Path

import pytest
import yaml

from sslgeo_lib.pages import CLAIMS, CORE_CLAIMS, PAGES, Page, page

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
GLUE_REF = re.compile(r"\{glue:\w+\}`(\w+)\.ipynb::(\w+)(?::\w+)?`")


def _code(notebook: str) -> str:
    cells = json.loads((BOOK / notebook).read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def _toc(name: str) -> list[str]:
    return [c["file"].removeprefix("book/") for c in yaml.safe_load((ROOT / name).read_text())["chapters"]]


def test_every_notebook_is_a_page_and_every_page_a_notebook():
    assert sorted(p.name for p in BOOK.glob("*.ipynb")) == sorted(pg.file for pg in PAGES.values())
    assert len({pg.prefix for pg in PAGES.values()}) == len(PAGES)  # one prefix, one page


def test_the_tables_of_contents_follow_the_registry():
    pages = [pg.notebook for pg in PAGES.values()]
    assert [f for f in _toc("_toc.yml") if f != "references"] == pages
    assert [f for f in _toc("_toc_core.yml") if f != "references"] == [pg.notebook for pg in PAGES.values() if pg.core]


def test_each_notebook_takes_its_prefix_from_the_registry():
    for pg in PAGES.values():
        code = _code(pg.file)
        assert f'pages.page("{pg.key}")' in code, pg.file
        assert f'glue_page("{pg.prefix}"' not in code and f'glue_rerun("{pg.prefix}"' not in code, pg.file


def test_every_glued_key_in_the_book_text_names_a_page_and_its_prefix():
    texts = list(BOOK.glob("*.md")) + list((BOOK / "parts").glob("*.md"))
    by_notebook = {pg.notebook: pg for pg in PAGES.values()}
    seen = set()
    for path in texts:
        for notebook, key in GLUE_REF.findall(path.read_text()):
            assert notebook in by_notebook, (path.name, notebook)
            assert key.startswith(by_notebook[notebook].prefix + "_"), (path.name, notebook, key)
            seen.add((notebook, key))
    intro = (BOOK / "intro.md").read_text() + (BOOK / "parts" / "claims.md").read_text()
    for key in CLAIMS:  # every claim's primary reading is in the full book's intro tables
        pg = PAGES[key]
        for part in ("statistic", "ci", "verdict"):
            assert f"{pg.notebook}.ipynb::{pg.prefix}_{part}" in intro, (key, part)
    core = (BOOK / "intro_core.md").read_text() + (BOOK / "parts" / "claims.md").read_text()
    assert {k for k in CLAIMS if f"{PAGES[k].notebook}.ipynb::{PAGES[k].prefix}_verdict" in core} >= set(CORE_CLAIMS)


def test_a_page_must_read_known_runs_and_an_unknown_page_says_which_exist():
    with pytest.raises(ValueError, match="runs='everything' is unknown; accepted: main, shapes"):
        Page("X", "x", "x", "x", False, "everything")
    with pytest.raises(KeyError, match="no page 'C9'; the pages are methods, C1"):
        page("C9")


def test_a_page_read_once_gives_its_verdicts_without_the_gate_as_a_second_reading_would(cifar, isolated_store):
    """`ungated_verdicts` (what `summary.every_reading` reads from one computation of each page) equals
    `readings(..., gated=False)`, for a page of the main sweep and a page of groups; and it is not the gated
    reading (one epoch on 256 images: the gate fails, so the gated verdicts are "not tested")."""
    from sslgeo_lib.pages import readings, ungated_verdicts
    from sslgeo_lib.presets import make_preset

    p = make_preset("smoke", n_train=256, epochs=1, encoder_width=4, seeds=[0, 1], methods=["byol"], n_test=100,
                    n_anchor=20, n_probe_train=200, n_probe_test=100, protocol_bank=300, protocol_queries=100)
    text = lambda verdicts: {k: repr(v) for k, v in verdicts.items()}  # noqa: E731 (every field; nan equals nan)
    for key in ("C2", "B1"):
        r = readings(key, p)
        ungated = ungated_verdicts(key, p, r)
        assert text(ungated) == text(readings(key, p, gated=False).verdicts), key
        assert ungated.keys() == r.verdicts.keys() and text(ungated) != text(r.verdicts), key
        assert r.verdicts["primary"].verdict == "not tested" != ungated["primary"].verdict, key
    with pytest.raises(ValueError, match="page C7 has no learned gate to drop"):
        ungated_verdicts("C7", p, readings("C7", p))
