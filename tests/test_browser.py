"""Every page of the smoke build opened in headless Chromium, as a reader's browser shows it; and the built HTML
scanned for anything it would load from another host."""
import re
import shutil

import pytest

pytestmark = pytest.mark.skipif(not shutil.which("chromedriver") and not __import__("os").environ.get("CI"),
                                reason="headless Chromium (apt-get install chromium chromium-driver) is not installed")


@pytest.fixture(scope="module")
def browser():
    from sslgeo_lib.browser import open_browser

    driver = open_browser()
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def reports(browser, html):
    from sslgeo_lib.browser import pages, visit

    return {page.stem: visit(browser, page) for page in pages(html)}


def test_every_page_loads_without_console_errors_and_with_every_figure(reports):
    assert len(reports) >= 14, sorted(reports)
    for name, r in reports.items():
        assert not r.errors, (name, r.errors)
        assert all(width > 0 for _, width in r.images), (name, [src for src, w in r.images if not w])
    for name in ("intro", "c2_invariance", "summary", "methods"):
        assert len(reports[name].images) >= 1, name


def test_math_is_typeset_from_the_books_own_mathjax(reports):
    for name in ("c2_invariance", "c4_tangent", "methods"):
        assert reports[name].math > 5, (name, reports[name].math)


def test_the_navigation_reaches_every_chapter(reports):
    links = {href.split("#")[0] for href in reports["intro"].links}
    assert {f"{name}.html" for name in reports} - {"intro.html"} <= links, sorted(links)


def test_the_claims_table_has_a_verdict_in_every_row(browser, html):
    from sslgeo_lib.browser import visit

    visit(browser, html / "intro.html")
    rows = browser.execute_script(
        "return Array.from(document.querySelectorAll('table')[0].querySelectorAll('tbody tr')).map(r => r.innerText);")
    assert len(rows) == 6, rows  # C1-C5 and C7
    for row in rows:
        assert re.search(r"supported|contradicted|negligible|inconclusive|mixed", row), row


def test_the_search_page_finds_a_claim(browser, html):
    import time

    browser.get((html / "search.html").resolve().as_uri() + "?q=invariant")
    for _ in range(50):
        found = browser.execute_script(
            "return Array.from(document.querySelectorAll('#search-results a')).map(a => a.getAttribute('href'));")
        if found:
            break
        time.sleep(0.2)
    assert any("c2_invariance" in href for href in found), found


EXTERNAL = re.compile(r"""(<script[^>]+src=|<link[^>]+href=|<img[^>]+src=|url\()\s*["']?(https?:)?//""", re.I)


def test_no_page_loads_anything_from_another_host(html):
    """Scripts, stylesheets, fonts and images all come from the book itself (links to papers are fine)."""
    root = html.parent
    offenders = []
    for path in list(root.rglob("*.html")) + list(root.rglob("*.css")) + list(root.rglob("*.js")):
        text = path.read_text(errors="ignore")
        for m in EXTERNAL.finditer(text):
            offenders.append(f"{path.relative_to(root)}: {text[m.start():m.start() + 120]!r}")
    assert not offenders, offenders[:20]
