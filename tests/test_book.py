"""The smoke book renders, its generated pages tell the truth, and it reads in a real browser offline."""

from __future__ import annotations

import functools
import html as htmllib
import http.server
import importlib
import inspect
import json
import os
import re
import shutil
import threading
from pathlib import Path

import pytest
from conftest import SMOKE_DIR

from infoclust.book import reference
from infoclust.book.catalogue import ROOT, chapters
from infoclust.book.site import build_site

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def site(smoke) -> Path:
    for chapter in chapters():
        smoke(chapter)
    return build_site(SMOKE_DIR)


def test_every_page_renders(site):
    assert (site / "index.html").exists()
    assert "infomax" in (site / "book" / "intro.html").read_text()
    for chapter in chapters():
        page = (site / "notebooks" / f"{chapter}.html").read_text()
        assert "Traceback" not in page
        assert "stops with a" in page and "{include}" not in page, f"{chapter}: book/running.md not included"
        assert re.search(r"Fig\. \d+", page), f"{chapter}: no numbered figure"
        for src in re.findall(r'<img[^>]+src="([^"]+)"', page):
            if not src.startswith("data:"):
                assert (site / "notebooks" / src).resolve().exists(), f"{chapter}: missing image {src}"
        assert "cdn.jsdelivr" not in page and "_static/mathjax/" in page, "MathJax must be served locally"
    assert "Lloyd" in (site / "book" / "bibliography.html").read_text()


def _text(page: str) -> str:
    """The visible text of an HTML page, with Sphinx's smart quotes made plain again."""
    text = htmllib.unescape(re.sub(r"<[^>]+>", "", page))
    return text.translate(str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'}))


def test_ledger_page_lists_every_recorded_result(site):
    page = _text((site / "book" / "ledger.html").read_text())
    runs = [json.loads(p.read_text()) for p in sorted((SMOKE_DIR / "results").glob("*.json"))]
    assert {r["chapter"] for r in runs} == set(chapters())
    tested = [r for run in runs for r in run["results"] if r["holds"] is not None]
    held = sum(r["holds"] for r in tested)
    assert f"{held} of {len(tested)} tested claims hold" in page
    for run in runs:
        for r in run["results"]:
            assert r["name"].replace("---", "\u2014").replace("--", "\u2013") in page, r["name"]
    assert "torch" in (site / "book" / "environment.html").read_text()


def test_api_reference_has_an_entry_for_every_public_name(site):
    """A page per public module; on it an entry (its anchor) for each function and class of ``__all__``."""
    for dotted in reference.public_modules():
        page = site / "book" / "api" / f"{dotted}.html"
        assert page.exists(), f"no API page for {dotted}"
        text = page.read_text()
        module = importlib.import_module(dotted)
        if hasattr(module, "__path__"):  # a package's page links its exports to their entries
            continue
        for name in module.__all__:
            if inspect.isclass(getattr(module, name)) or inspect.isfunction(getattr(module, name)):
                assert f'id="{dotted}.{name}"' in text, f"{dotted}.{name} has no entry on its page"
    index = (site / "book" / "api" / "index.html").read_text()
    assert "infoclust.wasserstein.html" in index and "infoclust.book.html" in index


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def server(site):
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        if os.environ.get("CI"):
            pytest.fail("chromium and chromedriver must be installed in CI (make test installs them)")
        pytest.skip("chromium/chromedriver not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,1600",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.mark.parametrize(
    "page", ["book/intro.html", "notebooks/01_kmeans.html", "book/api/infoclust.wasserstein.html"]
)
def test_page_in_headless_chromium(page, server, browser):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{server}/{page}")
    WebDriverWait(browser, 60).until(
        lambda d: (
            d.execute_script("return document.readyState") == "complete"
            and d.execute_script("return document.querySelectorAll('mjx-container').length") > 0
        )
    )
    n_math = browser.execute_script("return document.querySelectorAll('mjx-container').length")
    raw_tex = browser.execute_script(
        "return Array.from(document.querySelectorAll('.math')).filter("
        "e => !e.querySelector('mjx-container')).length"
    )
    broken = browser.execute_script(
        "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
    )
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    shots = SMOKE_DIR / "screenshots"
    shots.mkdir(exist_ok=True)
    browser.save_screenshot(str(shots / (page.replace("/", "_") + ".png")))
    assert n_math > 0, "no typeset math"
    assert raw_tex == 0, f"{raw_tex} math elements left untypeset"
    assert broken == [], f"images that did not load: {broken}"
    assert errors == [], f"console errors: {errors}"


def test_chapter_links_to_its_api_entry_in_headless_chromium(server, browser):
    """Chapter 4 names w2_exact; its link opens the function's entry on the API page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{server}/notebooks/04_wasserstein.html")
    link = browser.find_element(By.CSS_SELECTOR, 'a[href$="#infoclust.wasserstein.w2_exact"]')
    assert "w2_exact" in link.text
    link.click()
    WebDriverWait(browser, 60).until(lambda d: d.execute_script("return document.readyState") == "complete")
    assert browser.current_url.endswith("/book/api/infoclust.wasserstein.html#infoclust.wasserstein.w2_exact")
    entry = browser.execute_script(
        "const e = document.getElementById('infoclust.wasserstein.w2_exact');"
        "return e && e.closest('dl').querySelector('dd').innerText"
    )
    assert entry and "Parameters" in entry, f"the entry of w2_exact did not render: {entry!r}"
    shots = SMOKE_DIR / "screenshots"
    shots.mkdir(exist_ok=True)
    browser.save_screenshot(str(shots / "api_w2_exact_from_chapter_4.png"))


def test_a_solution_is_hidden_until_its_toggle_is_clicked(server, browser):
    """Chapter 1's first solution: code and output behind a toggle, shown when it is clicked."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{server}/notebooks/01_kmeans.html")
    WebDriverWait(browser, 60).until(lambda d: d.execute_script("return document.readyState") == "complete")
    hidden_cells = "//div[contains(@class, 'tag_hide-cell')]"
    cell = browser.find_element(By.XPATH, f"{hidden_cells}[contains(., '# Solution 1')]")
    toggle = cell.find_element(By.TAG_NAME, "summary")
    output = cell.find_element(By.CSS_SELECTOR, ".cell_output")
    assert toggle.is_displayed() and not output.is_displayed(), "the solution is not hidden"
    assert toggle.text.strip() == "Show the solution"
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", toggle)
    toggle.click()
    WebDriverWait(browser, 10).until(lambda d: output.is_displayed())
    assert "purity" in output.text
    shots = SMOKE_DIR / "screenshots"
    shots.mkdir(exist_ok=True)
    browser.save_screenshot(str(shots / "solution_1_1_opened.png"))


def _talk_table(text: str) -> str:
    start = text.index("| talk section | chapter | module | entry points |")
    return text[start : text.index("\n\n", start)]


def test_readme_and_introduction_share_one_table():
    readme = (ROOT / "README.md").read_text()
    intro = (ROOT / "book" / "intro.md").read_text()
    assert _talk_table(readme) == _talk_table(intro)
    for chapter in chapters():
        assert f"`{chapter}`" in _talk_table(readme), f"{chapter} missing from the table"
