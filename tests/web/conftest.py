"""A small real library for the app's tests: JPEGs on disk, scanned by the real scanner."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from colour_photos import colour_model, unnamed_places
from images import jpeg_bytes
from phototagger.index import Library
from phototagger.model import LandmarkModel, read_meta, save_model_file
from phototagger.scan.pipeline import Scanner, ScanOptions
from phototagger.web import create_app
from tiny_model import OPEN_GATE, build_tiny_model

#: Every answer plausible, none verified (as in tests/test_suggestions.py): margins that the
#: fixture network's evidence never reaches for a tag, and always reaches for a suggestion.
UNVERIFIED = {"tag_margin": 3.0, "suggest_margin": -4.0}


@pytest.fixture
def photos(tmp_path) -> Path:
    """A scanned folder of four JPEGs, plus a file outside it that nothing may serve."""
    folder = tmp_path / "photos"
    (folder / "trip").mkdir(parents=True)
    for index in range(4):
        target = folder / ("trip" if index % 2 else "") / f"photo{index}.jpg"
        target.write_bytes(jpeg_bytes(seed=index))
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.jpg").write_bytes(jpeg_bytes(seed=3))
    return folder


@pytest.fixture
def library(tmp_path, photos, model) -> Library:
    library = Library(f"sqlite:///{tmp_path}/index.sqlite3")
    summary = Scanner(library, model, ScanOptions(workers=0, write="none")).run([photos])
    assert summary.tagged == 4, summary.to_dict()
    return library


@pytest.fixture(scope="session")
def suggesting_model(tmp_path_factory) -> LandmarkModel:
    """The fixture network in a model file whose every answer is a suggestion, never a tag."""
    path = build_tiny_model(tmp_path_factory.mktemp("suggesting") / "unsure.pt")
    meta = read_meta(path)
    meta["evidence"] = {**meta["evidence"], **OPEN_GATE, **UNVERIFIED}
    module = torch.jit.load(str(path))
    save_model_file(module, {k: v for k, v in meta.items() if not k.startswith("format")}, path)
    return LandmarkModel.load(path, "cpu")


@pytest.fixture
def review_library(tmp_path, photos, suggesting_model) -> Library:
    """The four photos scanned, writing as a scan does by default, by ``suggesting_model``:
    four suggestions, and not a byte of any file changed."""
    before = {path: path.read_bytes() for path in photos.rglob("*.jpg")}
    library = Library(f"sqlite:///{tmp_path}/review.sqlite3")
    summary = Scanner(library, suggesting_model, ScanOptions(workers=0)).run([photos])
    assert (summary.tagged, summary.suggested) == (0, 4), summary.to_dict()
    assert {path: path.read_bytes() for path in photos.rglob("*.jpg")} == before
    return library


@pytest.fixture
def review_app(suggesting_model, review_library):
    return create_app(model=suggesting_model, library=review_library)


@pytest.fixture
def review_client(review_app):
    return review_app.test_client()


@pytest.fixture
def app(model, library):
    return create_app(model=model, library=library)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def colour_landmarks(tmp_path_factory) -> LandmarkModel:
    """The model of tests/colour_photos.py: it knows green, yellow and purple, grey is its
    ordinary photos, and red, blue and cyan are places it never saw."""
    return colour_model(tmp_path_factory.mktemp("colour-model"))


@pytest.fixture
def places_library(tmp_path, colour_landmarks) -> Library:
    """Places the model never saw, scanned: six red photos (four with camera GPS close
    together, so the two without are placed from them), six blue and five cyan ones, three
    green ones (a place of three), and five grey ones (ordinary photos: in no place)."""
    root = unnamed_places(tmp_path / "places", green=True)
    library = Library(f"sqlite:///{tmp_path}/places.sqlite3")
    summary = Scanner(library, colour_landmarks, ScanOptions(workers=0, write="none")).run(
        [root])
    assert (summary.predicted, summary.tagged, summary.placed_from_library) == (25, 0, 2), \
        summary.to_dict()
    return library


@pytest.fixture
def places_app(colour_landmarks, places_library):
    return create_app(model=colour_landmarks, library=places_library)


@pytest.fixture
def places_client(places_app):
    return places_app.test_client()
