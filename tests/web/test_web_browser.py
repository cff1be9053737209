"""End to end in real headless Chromium: upload a JPEG, see its landmarks, search the library,
review suggestions, name a place, see the map with no network."""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import sync_playwright
from sqlalchemy import select
from werkzeug.serving import make_server

from colour_photos import RED
from images import jpeg_bytes
from phototagger import tags
from phototagger.index import tables as orm
from phototagger.places import find_places

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


@contextmanager
def serving(app):
    """The app on a free loopback port, served from a thread like ``phototagger serve``."""
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        thread.join(5)


@pytest.fixture
def server(app):
    with serving(app) as url:
        yield url


@pytest.fixture
def review_server(review_app):
    """The app on a library whose every photo is a suggestion."""
    with serving(review_app) as url:
        yield url


def watched_page(browser, errors: list):
    page = browser.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("requestfailed", lambda request: errors.append(request.url))
    return page


def test_upload_a_jpeg_and_search_the_library(browser, server, tmp_path, client):
    photo = tmp_path / "upload.jpg"
    photo.write_bytes(jpeg_bytes(size=(400, 300), seed=1, orientation=6))
    errors = []
    page = watched_page(browser, errors)

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


def test_review_suggestions_one_by_one_and_in_bulk(browser, review_server, review_library,
                                                   photos):
    with review_library.session() as session:
        suggested = {p.id: (Path(p.fs_path), p.suggested_slug)
                     for p in review_library.find(session, state="suggested")}
    before = {path: path.read_bytes() for path, _ in suggested.values()}
    first, second, *rest = suggested
    errors = []
    page = watched_page(browser, errors)

    page.goto(review_server + "/library")
    page.select_option("form.search select[name=state]", "suggested")
    page.click("form.search button")
    page.wait_for_selector("#photos .tile[data-state=suggested]")
    assert page.locator("#photos .tile").count() == 4
    assert set(page.locator("#photos .tile-meta").all_inner_texts()) == {
        "suggested, not in the file"}
    page.click("nav a:has-text('Review')")
    page.wait_for_selector("#suggestions .review-item")
    page.wait_for_load_state("networkidle")
    assert page.locator("#suggestions .review-item").count() == 4
    assert page.locator("#confirm-selected").is_disabled()  # nothing selected yet
    assert page.locator(f"#suggestion-{first} .why").inner_text().endswith("a suggestion")

    # One by one: confirm the first photo's suggestion with its own button.
    page.click(f"#suggestion-{first} button[data-action=confirm]")
    page.wait_for_selector(f"#suggestion-{first}", state="detached")
    message = page.locator("#review-message")
    assert "confirmed as" in message.inner_text() and "written to" in message.inner_text()
    # Then reject the second through its checkbox and "Reject selected".
    page.check(f"#pick-{second}")
    assert page.locator("#review-count").inner_text() == "3 suggestions, 1 selected"
    page.click("#reject-selected")
    page.wait_for_selector(f"#suggestion-{second}", state="detached")
    assert "suggestion rejected" in message.inner_text()

    with review_library.session() as session:
        confirmed, rejected = session.get(orm.Photo, first), session.get(orm.Photo, second)
        assert (confirmed.tag_state, confirmed.landmark_slug, confirmed.suggested_slug) == (
            "confirmed", suggested[first][1], None)
        assert (rejected.tag_state, rejected.landmark_slug, rejected.suggested_slug) == (
            "removed", None, None)
    written = tags.read_tags(suggested[first][0])
    assert (written.slug, written.source) == (suggested[first][1], "person")
    second_path = suggested[second][0]
    assert second_path.read_bytes() == before[second_path]
    assert tags.read_tags(second_path) is None

    # In bulk: select all that is left, confirm them all; then nothing is left to review.
    page.check("#select-all")
    assert page.locator("#review-count").inner_text() == f"{len(rest)} suggestions, " \
        f"{len(rest)} selected"
    page.click("#confirm-selected")
    page.wait_for_selector("#review-empty:not([hidden])")
    assert page.locator("#review-empty").inner_text() == "No suggestions to review."
    assert message.inner_text() == f"{len(rest)} confirmed"
    for pid in rest:
        assert tags.read_tags(suggested[pid][0]).slug == suggested[pid][1]
    page.goto(review_server + "/review")
    assert page.locator("#review-empty").is_visible()
    assert page.locator(".review-item").count() == 0
    assert errors == []


def test_confirm_and_reject_a_suggestion_on_its_photo_page(browser, review_server,
                                                           review_library):
    with review_library.session() as session:
        suggested = {p.id: (Path(p.fs_path), p.suggested_slug)
                     for p in review_library.find(session, state="suggested")}
    (keep, (keep_path, slug)), (drop, (drop_path, _)) = list(suggested.items())[:2]
    untouched = drop_path.read_bytes()
    errors = []
    page = watched_page(browser, errors)

    page.goto(f"{review_server}/photos/{keep}")
    assert page.locator(".verdict").inner_text() == "Suggested, not written into the file."
    page.click("#confirm-suggestion")
    page.wait_for_selector(".verdict:has-text('Confirmed by you.')")
    assert tags.read_tags(keep_path).slug == slug

    page.goto(f"{review_server}/photos/{drop}")
    page.click("#reject-suggestion")
    page.wait_for_selector(".verdict:has-text('You removed its landmark')")
    assert page.locator("#reject-suggestion").count() == 0
    assert drop_path.read_bytes() == untouched
    with review_library.session() as session:
        assert session.get(orm.Photo, drop).tag_state == "removed"
    assert errors == []


@pytest.fixture
def places_server(places_app):
    """The app on a library of places the model never saw (tests/web/conftest.py)."""
    with serving(places_app) as url:
        yield url


@contextmanager
def offline_page(browser, errors: list, blocked: list):
    """A page with no network past this machine: every request to another host is aborted
    (and listed in ``blocked``), as with no internet; page errors, console errors and failed
    requests of the app's own go to ``errors``."""
    context = browser.new_context()

    def route(found, request):
        if urlsplit(request.url).hostname in ("127.0.0.1", "localhost"):
            return found.continue_()
        blocked.append(request.url)
        return found.abort("internetdisconnected")

    context.route("**/*", route)
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" and urlsplit(message.location.get("url", "")).hostname
            in ("127.0.0.1", "localhost") else None)
    page.on("requestfailed", lambda request: errors.append(request.url)
            if urlsplit(request.url).hostname == "127.0.0.1" else None)
    try:
        yield page
    finally:
        context.close()


def test_name_a_place_then_see_it_on_the_map_with_no_network(browser, places_server,
                                                             places_library,
                                                             colour_landmarks):
    with places_library.session() as session:
        red = next(p for p in find_places(session, colour_landmarks.network_id)
                   if "/red/" in p.paths[0])
    errors, blocked = [], []
    with offline_page(browser, errors, blocked) as page:
        page.goto(places_server + "/places")
        place = page.locator(f"#place-{red.id}")
        assert place.locator(".strip img").count() == 6
        page.wait_for_load_state("networkidle")
        widths = place.locator(".strip img").evaluate_all("images => images.map(i => "
                                                          "i.naturalWidth)")
        assert all(widths)  # every thumbnail served and decoded
        assert place.locator("input[name=latitude]").input_value() == f"{RED[0] + 0.0015:.6f}"
        place.locator("input[name=name]").fill("Red Fort")
        place.locator("input[name=city]").fill("Delhi")
        place.locator("button", has_text="Name this place").click()
        message = place.locator("[data-message]")
        message.wait_for(state="visible")
        assert message.inner_text().startswith("learned Red Fort (Delhi, at 28.65770, ")
        assert "indexed photos of it now: 6 tagged" in message.inner_text()
        assert place.locator("form").is_hidden()
        with places_library.session() as session:
            assert session.scalars(select(orm.Photo.path).where(
                orm.Photo.landmark_slug == "red-fort")).all() == sorted(red.paths)

        page.click("nav a:has-text('Map')")
        page.wait_for_selector("#map[data-outline-state=drawn]")
        markers = page.locator("#map .leaflet-marker-icon")
        assert markers.count() == 2  # Red Fort, and where two GPS-less red photos were placed
        assert page.locator("#map .pin-estimate").inner_text() == "2"
        outline = page.locator("#map svg path.world-outline")
        assert outline.count() == 1  # zoomed in on the pins: the land fills the view
        zoom_out = page.locator("#map .leaflet-control-zoom-out")
        for _ in range(8):  # out to the whole world, a zoom level (and its animation) a click
            if zoom_out.get_attribute("aria-disabled") == "true":
                break
            zoom_out.click()
            page.wait_for_timeout(350)
        page.wait_for_function("() => document.querySelector('#map path.world-outline')"
                               ".getAttribute('d').length > 2000")  # the world's coasts
        assert page.locator("#map .leaflet-tile").count() == 0  # no tiles: none could load
        assert blocked and {urlsplit(url).hostname for url in blocked} == {
            "tile.openstreetmap.org"}  # only the tile it tried; nothing else left the machine
        page.locator("#map img.leaflet-marker-icon[title^='Red Fort']").click()
        page.wait_for_url("**/library?landmark=Red+Fort")
        assert page.locator("#photos .tile").count() == 6
        assert set(page.locator("#photos .tile-name").all_inner_texts()) == {"Red Fort"}

        page.locator("#photos .tile a").first.click()
        page.click("#similar-link")
        page.wait_for_selector("#similar .tile")
        shown = page.locator("#similar .tile-similarity").all_inner_texts()
        values = [float(text.split()[-1]) for text in shown]
        assert len(values) == 24  # the page's limit: the library has 25 photos
        assert values == sorted(values, reverse=True)
        assert set(page.locator("#similar .tile-name").all_inner_texts()[:5]) == {"Red Fort"}
    assert errors == []


def test_tag_a_photo_with_a_landmark_the_app_does_not_know(browser, server, library, photos):
    errors = []
    page = watched_page(browser, errors)
    with library.session() as session:
        pid = library.photo_at(session, photos / "photo0.jpg").id
    page.goto(f"{server}/photos/{pid}")
    fields = page.locator("form.correct fieldset.new-place")
    assert fields.is_hidden()
    page.fill("form.correct input[name=landmark]", "Niagara Falls")
    page.select_option("form.correct select[name=write]", "none")
    page.click("form.correct button")
    page.wait_for_selector("form.correct fieldset.new-place:not([hidden])")
    assert "unknown landmark 'Niagara Falls'" in page.locator("[data-message]").inner_text()
    fields.locator("input[name=city]").fill("Niagara Falls")
    fields.locator("input[name=country]").fill("Canada")
    fields.locator("input[name=latitude]").fill("43.0799")
    fields.locator("input[name=longitude]").fill("-79.0747")
    page.click("form.correct button")
    page.wait_for_selector("[data-message]:has-text('confirmed as Niagara Falls')")
    page.wait_for_selector("h1:has-text('Niagara Falls')")
    assert "Niagara Falls, Canada" in page.locator(".place").inner_text()
    with library.session() as session:
        landmark = session.get(orm.Landmark, "niagara-falls")
        assert (landmark.latitude, landmark.longitude) == (43.0799, -79.0747)
    assert errors == []
