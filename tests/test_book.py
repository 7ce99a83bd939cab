"""The whole book and the core edition (_toc_core.yml), built with the smoke preset and -W (any warning or failing
notebook fails the build). Both builds share one jupyter-cache, so the core build re-executes nothing."""
import re

import pytest


CORE_CLAIMS = ("C1", "C2", "C3", "C4", "C5", "C7")


def _rows_have_verdicts(table: str, claims):
    for claim in claims:
        row = table[table.index(f">{claim}<"):]
        row = row[:row.index("</tr>")]
        assert re.search(r"supported|contradicted|negligible|inconclusive", row), row


def test_intro_has_the_claims_table_with_computed_verdicts(html):
    page = (html / "intro.html").read_text()
    table = page[page.index("<table"):page.index("</table>")]
    _rows_have_verdicts(table, CORE_CLAIMS)
    assert "I(z) - I(h)" in table and "erank(z) / erank(h)" in table and "locality gap" in table
    assert re.search(r"verdict rule\s*<span class=\"pasted-text\">v2</span>", page)
    head = page[:page.index("<table")]
    assert re.search(r"<img [^>]*src=\"[^\"]+\.png\"", head)  # the forest plot, computed at build time
    shape = page[page.index("id=\"the-projector-s-shape-c6\""):]
    _rows_have_verdicts(shape[shape.index("<table"):shape.index("</table>")], ("C6",))


def test_the_core_edition_has_the_core_claims_and_no_other_page(core_html):
    page = (core_html / "intro_core.html").read_text()
    table = page[page.index("<table"):page.index("</table>")]
    _rows_have_verdicts(table, CORE_CLAIMS)
    assert ">C6<" not in page and "b4_progress" not in page and "The core edition" in page
    built = {p.stem for p in core_html.glob("*.html")} - {"genindex", "search"}
    assert built == {"intro_core", "methods", "c1_transfer", "c2_invariance", "c3_dimension", "c4_tangent",
                     "c5_information", "c7_theory", "summary", "references"}, built
    for chapter in built - {"intro_core"}:  # the navigation reaches every chapter
        assert f'href="{chapter}.html"' in page, chapter


def test_c2_page_has_its_figures_and_glued_result(html):
    page = (html / "c2_invariance.html").read_text()
    assert len(re.findall(r"<img [^>]*src=\"[^\"]+\.png\"", page)) >= 2
    assert re.search(r"<strong><span class=\"pasted-text\">(supported|contradicted|negligible|inconclusive)", page)
    assert re.search(r"Reading.</strong>\s*<span class=\"pasted-text\">The projector", page)


def test_methods_page_shows_the_run_table_and_augmentation_figure(html):
    page = (html / "methods.html").read_text()
    assert "<th>knn</th>" in page and "images/s" in page
    assert "detectable, cpu" in page and "C4_locality" in page  # the rule's deltas and the power table
    assert len(re.findall(r"<img [^>]*src=\"[^\"]+\.png\"", page)) >= 2


@pytest.mark.parametrize("page", ["c1_transfer", "c3_dimension", "c4_tangent", "c5_information", "c7_theory"])
def test_claim_pages_have_figures_and_verdicts(html, page):
    text = (html / f"{page}.html").read_text()
    assert len(re.findall(r"<img [^>]*src=\"[^\"]+\.png\"", text)) >= 2
    assert re.search(r"<span class=\"pasted-text\">(supported|contradicted|negligible|inconclusive)", text)


@pytest.mark.parametrize("page", ["c6_projector", "b1_objectives", "b2_augmentations", "b4_progress"])
def test_beyond_pages_have_a_figure_and_verdicts(html, page):
    text = (html / f"{page}.html").read_text()
    assert len(re.findall(r"<img [^>]*src=\"[^\"]+\.png\"", text)) >= 1
    verdicts = re.findall(r"<span class=\"pasted-text\">[^<]*\b(supported|contradicted|negligible|inconclusive)\b", text)
    assert len(verdicts) >= 3, verdicts


def test_intro_has_the_beyond_the_paper_table(html):
    page = (html / "intro.html").read_text()
    beyond = page[page.index("id=\"beyond-the-paper\""):]
    table = beyond[beyond.index("<table"):beyond.index("</table>")]
    assert ">B4<" in table and "at 25% of training" in table and "at 100% of training" in table
    assert ">B1<" in table and "every objective" in table and ">B2<" in table and "every family" in table
    assert re.search(r"supported|contradicted|negligible|inconclusive", table)
