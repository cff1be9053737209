"""Take the README's screenshots of the app's pages with headless Chromium.

    python tests/web/screenshots.py --model phototagger/models/default.pt

Builds a throwaway library from a few photos of ``../shared/data/landmarks/train`` (copied, so
nothing there is touched), serves the app on a free loopback port and saves one PNG per page
under ``docs/screenshots/``. Not a test: run it by hand after the pages or the model change.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
from pathlib import Path

from playwright.sync_api import sync_playwright
from werkzeug.serving import make_server

from phototagger.index import Library
from phototagger.model import LandmarkModel
from phototagger.scan.pipeline import Scanner, ScanOptions
from phototagger.web import create_app

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ROOT.parent / "shared" / "data" / "landmarks" / "train"
LANDMARKS = ("eiffel-tower", "colosseum", "taj-mahal", "petra", "machu-picchu", "stonehenge")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def build_library(
    folder: Path, model: LandmarkModel, per_landmark: int, threshold: float | None
) -> Library:
    photos = folder / "Pictures"
    for slug in LANDMARKS:
        (photos / slug).mkdir(parents=True)
        for source in sorted((TRAIN / slug).glob("*.jpg"))[-per_landmark:]:
            shutil.copy(source, photos / slug / source.name)
    library = Library(f"sqlite:///{folder}/index.sqlite3")
    Scanner(library, model, ScanOptions(workers=0, write="none", threshold=threshold)).run([photos])
    return library


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "phototagger/models/default.pt")
    parser.add_argument("--upload", type=Path, help="photo for the Predict page")
    parser.add_argument("--out", type=Path, default=ROOT / "docs/screenshots")
    parser.add_argument("--per-landmark", type=int, default=2)
    parser.add_argument("--threshold", type=float, help="scan threshold [the model's own]")
    options = parser.parse_args()
    model = LandmarkModel.load(options.model, "cpu")
    upload = options.upload or sorted((TRAIN / "eiffel-tower").glob("*.jpg"))[0]
    options.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        library = build_library(
            Path(scratch), model, options.per_landmark, options.threshold
        )
        httpd = make_server("127.0.0.1", 0, create_app(model, library), threaded=True)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{httpd.server_port}"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 860})
            page.goto(base + "/")
            page.set_input_files("#photo-input", str(upload))
            page.wait_for_selector("#guesses li.guess")
            page.screenshot(path=options.out / "predict.png", full_page=True)
            page.goto(base + "/library?state=all")  # tagged and suggested alike
            page.wait_for_load_state("networkidle")
            page.screenshot(path=options.out / "library.png", full_page=True)
            page.locator("#photos .tile a").first.click()
            page.wait_for_load_state("networkidle")
            page.screenshot(path=options.out / "photo.png", full_page=True)
            page.goto(base + "/review")
            page.wait_for_load_state("networkidle")
            page.screenshot(path=options.out / "review.png", full_page=True)
            page.goto(base + "/about")
            page.screenshot(path=options.out / "about.png", full_page=True)
            browser.close()
        httpd.shutdown()
    print(f"screenshots in {options.out}")


if __name__ == "__main__":
    main()
