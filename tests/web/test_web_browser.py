"""End to end in real headless Chromium: upload a JPEG, see its landmarks, search the library."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from werkzeug.serving import make_server

from .conftest import jpeg_bytes

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]

pytestmark = pytest.mark.browser


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


@pytest.fixture
def browser():
    """Headless Chromium; missing Chromium skips on a workstation and fails under CI."""
    if not CHROMIUM.exists() and not _in_ci():
        pytest.skip(f"{CHROMIUM} is missing (Debian's chromium package); CI installs it")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def server(app):
    """The app on a free loopback port, served from a thread like ``phototagger serve``."""
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    thread.join(5)


def test_upload_a_jpeg_and_search_the_library(browser, server, tmp_path, client):
    photo = tmp_path / "upload.jpg"
    photo.write_bytes(jpeg_bytes(size=(400, 300), seed=1, orientation=6))
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("requestfailed", lambda request: errors.append(request.url))

    page.goto(server + "/")
    page.set_input_files("#photo-input", str(photo))
    page.wait_for_selector("#guesses li.guess", timeout=20_000)
    names = page.locator("#guesses .guess-name").all_inner_texts()
    assert len(names) == 5 and all(names)
    assert page.locator("#verdict").inner_text().startswith(names[0] + " (")
    assert page.locator("#verdict").inner_text().endswith("than ordinary photos): tagged")
    assert page.locator("#guesses a", has_text="OpenStreetMap").count() >= 1
    shown = page.eval_on_selector("#preview", "img => [img.naturalWidth, img.naturalHeight]")
    assert shown == [300, 400]  # shown upright

    page.set_input_files("#photo-input", files=[
        {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"not really a photo"}
    ])
    page.wait_for_selector("#predict-error:not([hidden])")
    assert "not an image" in page.locator("#predict-error").inner_text()

    landmark = client.get("/api/photos").json["photos"][0]["landmark"]["name"]
    page.goto(server + "/library")
    page.fill("input[name=landmark]", landmark)
    page.click("form.search button")
    page.wait_for_selector("#photos .tile")
    tiles = page.locator("#photos .tile-name").all_inner_texts()
    assert tiles and set(tiles) == {landmark}
    page.wait_for_load_state("networkidle")
    widths = page.eval_on_selector_all("#photos img", "images => images.map(i => i.naturalWidth)")
    assert widths and all(widths)  # every thumbnail was served and decoded

    page.locator("#photos .tile a").first.click()
    page.wait_for_selector("h2:has-text('Correct it')")
    page.fill("form.correct input[name=landmark]", "Hagia Sophia")
    page.select_option("form.correct select[name=write]", "none")
    page.click("form.correct button")
    page.wait_for_selector("[data-message]:not([hidden])")
    assert "confirmed as Hagia Sophia" in page.locator("[data-message]").inner_text()
    page.wait_for_selector("h1:has-text('Hagia Sophia')")
    assert errors == []
