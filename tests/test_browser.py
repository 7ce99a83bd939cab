"""Every page of the smoke build opened in headless Chromium, as a reader's browser shows it."""
import os
import re
import shutil
import struct
from urllib.parse import urlparse

import pytest
import yaml

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
VERDICT = re.compile(r"^(supported|contradicted|negligible|inconclusive|mixed|not tested)\b")

if not (shutil.which("chromedriver") and (shutil.which("chromium") or shutil.which("chromium-browser"))):
    if os.environ.get("CI"):
        raise RuntimeError("CI needs headless Chromium: apt-get install chromium chromium-driver (.ci/run does)")
    pytestmark = [pytest.mark.slow,
                  pytest.mark.skip(reason="headless Chromium (apt-get install chromium chromium-driver) "
                                          "is not installed")]
else:
    pytestmark = pytest.mark.slow  # builds and opens the book: the full tier (make test-all)


def _toc_pages(toc: str) -> set[str]:
    cfg = yaml.safe_load((ROOT / toc).read_text())
    return {cfg["root"].split("/")[-1], *(c["file"].split("/")[-1] for c in cfg["chapters"])}


@pytest.fixture(scope="module")
def browser():
    from sslgeo_lib.browser import open_browser

    driver = open_browser()
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def reports(browser, html):
    """What the browser saw on every built page: the book's pages, search, the index and the root redirect."""
    from sslgeo_lib.browser import pages, visit

    return {str(page.relative_to(html.parent)): visit(browser, page) for page in pages(html.parent)}


def test_every_page_opens_with_no_problem(reports):
    """No console error, every figure loaded, all math typeset without a TeX error, nothing from another host."""
    from sslgeo_lib.browser import problems

    expected = {f"book/{p}.html" for p in _toc_pages("_toc.yml")} | {"index.html", "search.html", "genindex.html"}
    assert expected <= set(reports), sorted(expected - set(reports))
    found = {page: problems(r) for page, r in reports.items()}
    assert not any(found.values()), {p: f for p, f in found.items() if f}
    for name in ("intro", "c2_invariance", "summary", "methods"):
        assert len(reports[f"book/{name}.html"].images) >= 1, name


def test_math_is_typeset_by_the_books_own_mathjax(reports):
    for name in ("c2_invariance", "c4_tangent", "methods"):
        r = reports[f"book/{name}.html"]
        assert r.math > 5 and r.typeset == r.math and r.math_errors == 0, (name, r.math, r.typeset, r.math_errors)
        assert len(r.mathjax) == 1 and all(s.startswith("file:")
                                           and urlparse(s).path.endswith("/_static/mathjax/tex-svg-full.js")
                                 for s in r.mathjax), r.mathjax


def test_the_navigation_reaches_every_chapter(reports):
    links = {href.split("#")[0] for href in reports["book/intro.html"].links}
    assert {f"{name}.html" for name in _toc_pages("_toc.yml")} - {"intro.html"} <= links, sorted(links)


def test_every_verdict_column_has_a_verdict_in_every_row(browser, html):
    """The intro's tables (the claims, C6, beyond the paper): the Verdict cell of each row holds a verdict."""
    from sslgeo_lib.browser import visit

    visit(browser, html / "intro.html")
    tables = browser.execute_script("""
        return Array.from(document.querySelectorAll('table')).map(t => ({
          head: Array.from(t.querySelectorAll('thead th')).map(th => th.innerText.trim()),
          rows: Array.from(t.querySelectorAll('tbody tr')).map(r => Array.from(r.cells)"""
                                    """.map(c => c.innerText.trim()))}));
    """)
    with_verdicts = [t for t in tables if "Verdict" in t["head"]]
    assert len(with_verdicts) >= 3, [t["head"] for t in tables]
    claims = []
    for t in with_verdicts:
        col = t["head"].index("Verdict")
        for row in t["rows"]:
            assert VERDICT.match(row[col]), (row[0], row[col])
            claims.append(row[0])
    assert {"C1", "C2", "C3", "C4", "C5", "C6", "C7", "B1", "B2", "B4"} <= set(claims), claims


def test_the_search_page_finds_a_claim(browser, html):
    import time

    browser.get((html.parent / "search.html").resolve().as_uri() + "?q=invariant")
    found, deadline = [], time.monotonic() + 30
    while time.monotonic() < deadline and not any("c2_invariance" in href for href in found):
        time.sleep(0.2)
        found = browser.execute_script(
            "return Array.from(document.querySelectorAll('#search-results a')).map(a => a.getAttribute('href'));")
    assert any("c2_invariance" in href for href in found), found


def test_the_check_finds_what_is_wrong_with_a_page(browser, tmp_path):
    """A page with a console error, a missing image, a script from another host and a TeX error: each is reported."""
    from sslgeo_lib.browser import problems, visit

    mathjax = (ROOT / "_vendor" / "mathjax" / "tex-svg-full.js").as_uri()
    page = tmp_path / "bad.html"
    page.write_text(f"""<html><head><script src="https://example.invalid/x.js"></script>
        <script>window.MathJax = {{options: {{enableMenu: false}}}};</script><script src="{mathjax}"></script></head>
        <body><img src="missing.png"><span class="math">\\(\\frac{{1}}\\)</span>
        <script>console.error("boom")</script></body></html>""")
    found = "\n".join(problems(visit(browser, page, settle=10)))
    assert "console error" in found and "boom" in found
    assert "image not loaded: missing.png" in found
    assert "loads from another host: https://example.invalid/x.js" in found
    assert "TeX errors" in found
    good = tmp_path / "good.html"
    good.write_text("<html><body><p>fine</p></body></html>")
    assert problems(visit(browser, good)) == []


def test_screenshots_are_pngs_of_the_window(html, tmp_path):
    from sslgeo_lib.browser import WINDOW, screenshots

    (shot,) = screenshots(html, tmp_path / "shots", names=["intro"])
    head = shot.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">I", head[16:20])[0] == WINDOW[0]
    with pytest.raises(FileNotFoundError, match="no_such_page"):
        screenshots(html, tmp_path / "shots", names=["no_such_page"])
