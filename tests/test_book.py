"""The whole book and the core edition (_toc_core.yml), built with the smoke preset and -W (any warning or failing
notebook fails the build). Both builds share one jupyter-cache, so the core build re-executes nothing."""
import re

import pytest

pytestmark = pytest.mark.slow  # builds the book / runs notebooks: the full tier (make test-all)


CORE_CLAIMS = ("C1", "C2", "C3", "C4", "C5", "C7")


def _rows_have_verdicts(table: str, claims):
    for claim in claims:
        row = table[table.index(f">{claim}<"):]
        row = row[:row.index("</tr>")]
        assert re.search(r"supported|contradicted|negligible|inconclusive|not tested", row), row


def _has_forest_plot(page: str):
    box = re.search(r"<div class=\"forest-plot[^\"]*\">(.*?)</div>", page, re.S)
    image = box and re.search(r"<img [^>]*src=\"([^\"]+\.png)\"", box.group(1))
    assert image, "no forest plot"
    return image.group(1)


def test_intro_has_the_claims_table_with_computed_verdicts(html):
    page = (html / "intro.html").read_text()
    table = page[page.index("<table"):page.index("</table>")]
    _rows_have_verdicts(table, CORE_CLAIMS)
    assert "I(z) - I(z0)" in table and "erank(z) / erank(z0)" in table and "locality gap" in table
    assert re.search(r"verdict rule\s*<span class=\"pasted-text\">v3</span>", page)
    head = page[:page.index("<table")]
    assert not re.search(r"<img [^>]*src=\"[^\"]+\.png\"", head)  # the forest plot comes after the tables
    summary = (html / "summary.html").read_text()
    assert re.search(r"Claims shown:\s*<span class=\"pasted-text\">C1, C2, C3, C4, C5, C6, C7</span>", summary)
    _has_forest_plot(page)
    shape = page[page.index("id=\"the-projector-s-shape-c6\""):]
    _rows_have_verdicts(shape[shape.index("<table"):shape.index("</table>")], ("C6",))


def test_the_core_edition_has_the_core_claims_and_no_other_page(html, core_html):
    page = (core_html / "intro_core.html").read_text()
    table = page[page.index("<table"):page.index("</table>")]
    _rows_have_verdicts(table, CORE_CLAIMS)
    assert ">C6<" not in page and "b4_progress" not in page and "The core edition" in page
    core_forest = _has_forest_plot(page)
    assert (core_html / core_forest).is_file()
    full_forest = _has_forest_plot((html / "intro.html").read_text())
    assert (html / full_forest).is_file()
    assert (core_html / core_forest).read_bytes() != (html / full_forest).read_bytes()  # no C6 in the core one
    built = {p.stem for p in core_html.glob("*.html")} - {"genindex", "search"}
    assert built == {"intro_core", "methods", "c1_transfer", "c2_invariance", "c3_dimension", "c4_tangent",
                     "c5_information", "c7_theory", "summary", "references"}, built
    for chapter in built - {"intro_core"}:  # the navigation reaches every chapter
        assert f'href="{chapter}.html"' in page, chapter


def test_c2_page_has_its_figures_and_glued_result(html):
    page = (html / "c2_invariance.html").read_text()
    assert len(re.findall(r"<img [^>]*src=\"[^\"]+\.png\"", page)) >= 2
    # the readings table is glued Markdown: its verdicts are bold text
    assert re.search(r"<strong>(supported|contradicted|negligible|inconclusive|mixed|not tested)", page)
    assert re.search(r"Reading.</strong>\s*<span class=\"pasted-text\">The trained projector", page)


def test_methods_page_shows_the_run_table_and_augmentation_figure(html):
    page = (html / "methods.html").read_text()
    assert "<th>knn</th>" in page and "images/s" in page
    assert "detectable, cpu" in page and "C4_locality" in page  # the rule's deltas and the power table
    assert len(re.findall(r"<img [^>]*src=\"[^\"]+\.png\"", page)) >= 2


@pytest.mark.parametrize("page", ["c1_transfer", "c3_dimension", "c4_tangent", "c5_information", "c7_theory"])
def test_claim_pages_have_figures_and_verdicts(html, page):
    text = (html / f"{page}.html").read_text()
    assert len(re.findall(r"<img [^>]*src=\"[^\"]+\.png\"", text)) >= 2
    assert re.search(r"(<span class=\"pasted-text\">|<strong>)"
                     r"(supported|contradicted|negligible|inconclusive|mixed|not tested)",
                     text)


@pytest.mark.parametrize("page", ["c6_projector", "b1_objectives", "b2_augmentations", "b4_progress"])
def test_beyond_pages_have_a_figure_and_verdicts(html, page):
    text = (html / f"{page}.html").read_text()
    assert len(re.findall(r"<img [^>]*src=\"[^\"]+\.png\"", text)) >= 1
    verdicts = re.findall(r"(?:<span class=\"pasted-text\">|<strong>)[^<]*\b(supported|contradicted|negligible|"
                          r"inconclusive|mixed|not tested)\b", text)
    assert len(verdicts) >= 3, verdicts


def test_intro_has_the_beyond_the_paper_table(html):
    page = (html / "intro.html").read_text()
    beyond = page[page.index("id=\"beyond-the-paper\""):]
    table = beyond[beyond.index("<table"):beyond.index("</table>")]
    assert ">B4<" in table and "at 25% of training" in table and "at 100% of training" in table
    assert ">B1<" in table and "every objective" in table and ">B2<" in table and "every family" in table
    assert re.search(r"supported|contradicted|negligible|inconclusive|not tested", table)


EXTERNAL = re.compile(r"""(<(script|img|iframe|embed|source|audio|video|track|input)\b[^>]*\bsrc=|<link\b[^>]*\bhref="""
                      r"""|<object\b[^>]*\bdata=|\bsrcset=|<image\b[^>]*\bhref=|\burl\(|@import)\s*["']?(https?:)?//""",
                      re.I)


def test_the_offline_scan_catches_every_kind_of_external_load():
    for text in ('<script defer src="https://x.org/a.js">', "<link rel='stylesheet' href='//x.org/a.css'>",
                 '<img alt="" src="http://x.org/a.png">', '<img srcset="https://x.org/a.png 2x">',
                 '<iframe src="https://x.org">', '<object data="https://x.org/a.svg">',
                 '<image xlink:href="https://x.org/a.png"/>', "src: url('https://x.org/f.woff2')",
                 '@import "https://x.org/a.css";', '<source src="https://x.org/v.mp4">'):
        assert EXTERNAL.search(text), text
    for text in ('<a href="https://arxiv.org/abs/2205.06926">', '<script src="../_static/a.js">',
                 "url('fonts/a.woff2')", '<img src="data:image/png;base64,AAAA">'):
        assert not EXTERNAL.search(text), text


def test_no_page_loads_anything_from_another_host(html):
    """Scripts, stylesheets, fonts, images and frames all come from the book itself (links to papers are fine)."""
    root = html.parent
    offenders = []
    for suffix in ("html", "css", "js", "svg"):
        for path in root.rglob(f"*.{suffix}"):
            text = path.read_text(errors="ignore")
            offenders += [f"{path.relative_to(root)}: {text[m.start():m.start() + 120]!r}"
                          for m in EXTERNAL.finditer(text)]
    assert not offenders, offenders[:20]


def _cited_keys(text: str) -> set[str]:
    return {k.strip() for group in re.findall(r"\{cite:[pt]\}`([^`]+)`", text) for k in group.split(",")}


def test_every_reference_is_cited_and_every_page_cites():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    keys = set(re.findall(r"^@\w+\{([^,]+),", (root / "references.bib").read_text(), flags=re.M))
    sources = {p.stem: p.read_text()
               for p in [*(root / "book").glob("*.ipynb"), *(root / "book" / "parts").glob("*.md")]}
    cited = set().union(*map(_cited_keys, sources.values()))
    assert keys == cited, (sorted(keys - cited), sorted(cited - keys))
    uncited = [name for name, text in sources.items() if name != "rebuild" and not _cited_keys(text)]
    assert not uncited, uncited


def test_the_references_page_lists_every_entry(html):
    import html as html_text
    from pathlib import Path

    bib = (Path(__file__).resolve().parents[1] / "references.bib").read_text()
    titles = [t.replace("{", "").replace("}", "") for t in re.findall(r"^\s*title\s*=\s*\{(.+)\},?$", bib, flags=re.M)]
    page = html_text.unescape(re.sub(r"<[^>]+>", "", (html / "references.html").read_text()))
    page = re.sub(r"\s+", " ", page)
    assert len(titles) == len(re.findall(r"^@\w+\{", bib, flags=re.M))
    missing = [t for t in titles if t.lower() not in page.lower()]  # the style may change the case
    assert not missing, missing


def test_a_missing_reference_key_fails_the_build(tmp_path):
    """-W turns sphinxcontrib-bibtex's unknown-key warning into a failed build."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    (tmp_path / "_config.yml").write_text(f"title: t\nbibtex_bibfiles: ['{root / 'references.bib'}']\n"
                                          "execute:\n  execute_notebooks: 'off'\n")
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: index\n")
    (tmp_path / "index.md").write_text("# t\n\nKnown {cite:p}`chen2020simclr`, unknown {cite:p}`no_such_key2099`.\n\n"
                                       "```{bibliography}\n```\n")
    build = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(tmp_path), "-W", "-n"]
    out = subprocess.run(build, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "no_such_key2099" in out.stdout + out.stderr, out.stdout[-2000:]
    (tmp_path / "index.md").write_text("# t\n\nKnown {cite:p}`chen2020simclr`.\n\n```{bibliography}\n```\n")
    out = subprocess.run(build, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]


def test_every_notebook_page_has_its_rerun_command_and_a_download(html):
    import html as html_text
    from pathlib import Path

    book = Path(__file__).resolve().parents[1] / "book"
    for nb in sorted(book.glob("*.ipynb")):
        page = (html / f"{nb.stem}.html").read_text()
        text = html_text.unescape(re.sub(r"<[^>]+>", "", page))  # the command is highlighted token by token
        assert re.search(rf"papermill\s+book/{nb.stem}\.ipynb\s+{nb.stem}\.out\.ipynb", text), nb.stem
        assert re.search(r"-p\s+preset\s+smoke", text), nb.stem
        link = re.search(rf'<a class="reference download internal"[^>]*href="([^"]*/{nb.stem}\.ipynb)"', page)
        assert link and (html / link.group(1)).is_file(), nb.stem


def test_repeated_scripts_are_dropped_once_each():
    """The book's Sphinx extension keeps the first of scripts that are the same file or the same inline body
    (an inline script registered once with filename None and once with "" is the same script)."""
    from types import SimpleNamespace as JS

    from sslgeo_lib.sphinx_ext import drop_repeated_scripts

    a, b = JS(filename=None, attributes={"body": "const X = 1"}), JS(filename="", attributes={"body": "const X = 1"})
    c, d = (JS(filename="", attributes={"body": "const Y = 2"}),
            JS(filename="_static/m.js", attributes={"defer": "defer"}))
    e, f = JS(filename="_static/m.js", attributes={"defer": "defer"}), JS(filename="_static/m.js", attributes={})
    context = {"script_files": [a, b, c, d, e, f]}
    drop_repeated_scripts(None, "page", "page.html", context, None)
    assert context["script_files"] == [a, c, d, f]
