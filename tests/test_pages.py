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
