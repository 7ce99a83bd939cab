"""The built book as a reader sees it: pages opened in headless Chromium (selenium), for tests and screenshots.

`open_browser()` starts Chromium with its driver (Debian's `chromium` and `chromium-driver` packages, found on
PATH); `visit(driver, page)` loads one built page and returns what a reader's browser reports about it.
`python -m sslgeo_lib.browser _build/html OUT` saves a PNG screenshot of every page of a built book.
"""
from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

WINDOW = (1280, 1600)  # CSS pixels of the screenshots


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
    errors: list[str]          # console messages at level SEVERE
    images: list[tuple[str, int]]  # (src, natural width) of every <img>
    math: int                  # typeset MathJax containers (mjx-container)
    links: list[str]           # href of every navigation link in the sidebar


def visit(driver, page: Path, settle: float = 10.0) -> PageReport:
    """Load `page` (a built HTML file), wait until every image has loaded and MathJax has finished typesetting
    (at most `settle` seconds), and report what the browser shows."""
    driver.get(page.resolve().as_uri())
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:
        ready = driver.execute_script(
            "const imgs = Array.from(document.images);"
            "return document.readyState === 'complete' && imgs.every(i => i.complete)"
            " && (!document.querySelector('.math') || document.querySelectorAll('mjx-container').length > 0);")
        if ready:
            break
        time.sleep(0.2)
    return PageReport(
        url=page.name, title=driver.title,
        errors=[e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"],
        images=[tuple(x) for x in driver.execute_script(
            "return Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth]);")],
        math=driver.execute_script("return document.querySelectorAll('mjx-container').length;"),
        links=driver.execute_script(
            "return Array.from(document.querySelectorAll('nav.bd-links a.reference')).map(a => a.getAttribute('href'));"))


def pages(html: Path) -> list[Path]:
    """Every content page of a built book (not the generated index and search pages)."""
    return sorted(p for p in html.glob("*.html") if p.stem not in ("genindex", "search", "index"))


def screenshots(html: Path, out: Path) -> list[Path]:
    """A full-width PNG of every page of the built book `html` into `out` (one file per page)."""
    out.mkdir(parents=True, exist_ok=True)
    driver = open_browser()
    try:
        saved = []
        for page in pages(html):
            visit(driver, page)
            driver.save_screenshot(str(out / f"{page.stem}.png"))
            saved.append(out / f"{page.stem}.png")
        return saved
    finally:
        driver.quit()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m sslgeo_lib.browser BUILT_HTML_FOLDER OUT_FOLDER")
    for path in screenshots(Path(sys.argv[1]), Path(sys.argv[2])):
        print(path)
