"""The built book as a reader sees it: pages opened in headless Chromium (selenium), for tests, checks and screenshots.

`open_browser()` starts Chromium with its driver (Debian's `chromium` and `chromium-driver` packages, found on
PATH); `visit(driver, page)` loads one built page and returns what a reader's browser reports about it;
`problems(report)` lists what is wrong with it.

    python -m sslgeo_lib.browser check _build/html        # every page: console errors, figures, math, other hosts
    python -m sslgeo_lib.browser shots _build/html OUT    # a PNG screenshot of every page into OUT
"""
from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

WINDOW = (1280, 1600)  # CSS pixels of the screenshots
LOCAL = ("file:", "data:", "blob:", "about:")  # what a page of a local build may load


def open_browser(width: int = WINDOW[0], height: int = WINDOW[1]):
    """A headless Chromium under selenium, with the browser's console log readable (`get_log("browser")`)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    driver_path, chrome = shutil.which("chromedriver"), shutil.which("chromium") or shutil.which("chromium-browser")
    if not driver_path or not chrome:
        raise FileNotFoundError("headless Chromium needs the chromium and chromedriver programs on PATH; on Debian: "
                                "apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = chrome
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--allow-file-access-from-files"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver_path), options=options)


@dataclass
class PageReport:
    """What the browser saw on one page."""

    url: str
    title: str
    settled: bool              # the page, its images and MathJax finished within the time allowed
    errors: list[str]          # console messages at level SEVERE
    images: list[tuple[str, int]]  # (src, natural width) of every <img>
    math: int                  # math elements on the page (Sphinx's .math)
    typeset: int               # of those, the ones MathJax rendered (holding an mjx-container)
    math_errors: int           # TeX errors MathJax rendered (mjx-merror)
    mathjax: list[str]         # the src of every MathJax script, resolved
    sources: list[str]         # every script, stylesheet, icon, image and frame the page refers to, resolved
    resources: list[str]       # every URL the page loaded (the Resource Timing API), and the page's own
    links: list[str]           # href of every navigation link in the sidebar


_READY = """
const imgs = Array.from(document.images);
const mj = window.MathJax;
if (mj && mj.startup && mj.startup.promise && !window.sslgeoMath) {
  window.sslgeoMath = 'pending';
  mj.startup.promise.then(() => { window.sslgeoMath = 'done'; });
}
const mathDone = !document.querySelector('.math') || window.sslgeoMath === 'done';
return document.readyState === 'complete' && imgs.every(i => i.complete) && mathDone;
"""

_REPORT = """
const maths = Array.from(document.querySelectorAll('.math'));
return {
  images: Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth]),
  math: maths.length,
  typeset: maths.filter(m => m.querySelector('mjx-container')).length,
  math_errors: document.querySelectorAll('mjx-merror, [data-mml-node="merror"]').length,
  mathjax: Array.from(document.scripts).map(s => s.src).filter(s => /mathjax/i.test(s)),
  sources: [...Array.from(document.scripts).map(s => s.src).filter(Boolean),
            ...Array.from(document.querySelectorAll('link[href]')).filter(l => l.rel !== 'canonical').map(l => l.href),
            ...Array.from(document.images).map(i => i.currentSrc || i.src),
            ...Array.from(document.querySelectorAll('iframe[src], embed[src], source[src], object[data]'))
               .map(e => e.src || e.data)],
  resources: [location.href, ...performance.getEntriesByType('resource').map(e => e.name)],
  links: Array.from(document.querySelectorAll('nav.bd-links a.reference')).map(a => a.getAttribute('href')),
};
"""


def visit(driver, page: Path, settle: float = 20.0) -> PageReport:
    """Load `page` (a built HTML file), wait until it, every image and MathJax's typesetting have finished (at most
    `settle` seconds; `settled` says whether they did), and report what the browser shows."""
    driver.get(page.resolve().as_uri())
    deadline, settled = time.monotonic() + settle, False
    while not settled and time.monotonic() < deadline:
        settled = bool(driver.execute_script(_READY))
        if not settled:
            time.sleep(0.2)
    time.sleep(0.3)  # late console messages
    seen = driver.execute_script(_REPORT)  # every other PageReport field, by name
    seen["images"] = [tuple(x) for x in seen["images"]]
    return PageReport(url=page.name, title=driver.title, settled=settled,
                      errors=[e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"], **seen)


def problems(report: PageReport) -> list[str]:
    """What is wrong with a page as the browser showed it (empty: nothing)."""
    out = [] if report.settled else ["did not finish loading (page, images or MathJax) in time"]
    out += [f"console error: {e}" for e in report.errors]
    out += [f"image not loaded: {src}" for src, width in report.images if not width]
    if report.typeset < report.math:
        out.append(f"{report.math - report.typeset} of {report.math} math elements not typeset")
    if report.math_errors:
        out.append(f"{report.math_errors} TeX errors rendered by MathJax")
    out += [f"loads from another host: {url}" for url in dict.fromkeys(report.resources + report.sources)
            if not url.startswith(LOCAL)]
    return out


def pages(html: Path) -> list[Path]:
    """Every HTML page of a built book: `html` is the folder holding the pages or the build's html/ root (whose
    index.html redirects to the first page, and whose book/ folder holds the pages)."""
    return sorted([*html.glob("*.html"), *(html / "book").glob("*.html")])


def check(html: Path) -> dict[str, list[str]]:
    """`problems` of every page of the built book `html`: {page: problems}, pages without problems left out."""
    driver = open_browser()
    try:
        return {str(p.relative_to(html)): found for p in pages(html) if (found := problems(visit(driver, p)))}
    finally:
        driver.quit()


def screenshots(html: Path, out: Path, names=None) -> list[Path]:
    """A PNG of every page of the built book `html` (or of the pages whose stems are in `names`) into `out`."""
    chosen = [p for p in pages(html) if names is None or p.stem in names]
    if names is not None and len(chosen) < len(set(names)):
        raise FileNotFoundError(f"no built page for {sorted(set(names) - {p.stem for p in chosen})} in {html}")
    out.mkdir(parents=True, exist_ok=True)
    driver = open_browser()
    try:
        saved = []
        for page in chosen:
            visit(driver, page)
            driver.save_screenshot(str(out / f"{page.stem}.png"))
            saved.append(out / f"{page.stem}.png")
        return saved
    finally:
        driver.quit()


def main(argv: list[str]) -> int:
    usage = "usage: python -m sslgeo_lib.browser check BUILT_HTML | shots BUILT_HTML OUT_FOLDER"
    if len(argv) < 2 or (argv[0], len(argv)) not in (("check", 2), ("shots", 3)):
        print(usage, file=sys.stderr)
        return 2
    html = Path(argv[1])
    built = pages(html)
    if not built:
        print(f"no built HTML pages in {html} (build the book first: make book)", file=sys.stderr)
        return 2
    if argv[0] == "shots":
        for path in screenshots(html, Path(argv[2])):
            print(path)
        return 0
    found = check(html)
    for page, issues in found.items():
        for issue in issues:
            print(f"{page}: {issue}")
    print(f"{len(built)} pages checked, {len(found)} with problems", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
