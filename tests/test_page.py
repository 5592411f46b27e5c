"""The search page in headless Chromium (the system browser, driven by playwright): type a query, see results."""

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
import uvicorn

from lsr.api.app import create_app
from lsr.retrieval.search import LiveSearcher
from lsr.api.settings import Settings

SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "search-page.png"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
]


@pytest.fixture(scope="module")
def base_url(small_searcher):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(LiveSearcher.from_searcher(small_searcher), Settings()), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.mark.slow
def test_typing_a_query_shows_highlighted_results(base_url, chromium, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 900})
            page.goto(base_url + "/")
            page.fill("#query", "heat transfer in hypersonic flow")
            page.select_option("#mode", "sparse")
            page.click("button[type=submit]")
            page.wait_for_selector("li.hit", timeout=30_000)
            hits = page.locator("li.hit")
            assert hits.count() == 10
            assert "hits · sparse" in page.inner_text("#status")
            assert page.locator("li.hit .match").count() > 0  # matching terms are highlighted
            assert page.locator("li.hit mark").count() > 0
            page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
            if not SCREENSHOT.exists():  # the committed screenshot is made once; tests never dirty the tree after
                SCREENSHOT.parent.mkdir(exist_ok=True)
                shutil.copy(tmp_path / "page.png", SCREENSHOT)
        finally:
            browser.close()
