"""Fixtures shared by every test: a real (tiny) model file, an index, no user config file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from phototagger.index import Library
from phototagger.model import LandmarkModel
from tiny_model import build_tiny_model

#: The throwaway PostgreSQL server (its fixtures), for tests that run on both kinds of index.
pytest_plugins = ["postgres_cluster"]
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _no_user_config(monkeypatch):
    """The config file of whoever runs the tests must not change what the commands do."""
    monkeypatch.setenv("PHOTOTAGGER_CONFIG", os.devnull)


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    """A model file in phototagger's format with the six fixture landmarks (threshold 0)."""
    return build_tiny_model(tmp_path_factory.mktemp("model") / "tiny.pt")


@pytest.fixture(scope="session")
def model(tiny_model_path) -> LandmarkModel:
    return LandmarkModel.load(tiny_model_path, "cpu")


@pytest.fixture
def library(request, tmp_path):
    """An index in a real SQLite file; a test parametrized with ``both_backends``
    (postgres_cluster) also gets one in a fresh database of the throwaway PostgreSQL server."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield Library(f"sqlite:///{tmp_path / 'index.sqlite3'}")
        return
    library = Library(request.getfixturevalue("url"))
    yield library
    library.engine.dispose()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` when this checkout has it; tests that need it skip elsewhere."""
    if not SHARED_DATA.is_dir() or os.environ.get("PHOTOTAGGER_NO_SHARED"):
        pytest.skip("../shared/data is not present on this machine")
    return SHARED_DATA
