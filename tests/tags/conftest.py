"""Fixtures for the metadata tests: writable copies of real camera files and tag requests."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from images import FIXTURES
from phototagger.landmarks import read_gazetteer
from phototagger.tags import TagRequest


@pytest.fixture(scope="session")
def gazetteer():
    return read_gazetteer(FIXTURES / "gazetteer.csv")


@pytest.fixture
def make_request(gazetteer):
    def make(slug: str = "eiffel-tower", confidence: float | None = 0.93, second: int = 0):
        landmark = gazetteer[slug]
        return TagRequest(
            landmark=landmark,
            confidence=confidence,
            source="model" if confidence is not None else "person",
            model="tiny-test-model@0.0.1+abc123" if confidence is not None else None,
            top_k=[(landmark.name, confidence or 1.0), ("Colosseum", 0.02)],
            tagged_at=datetime(2024, 5, 1, 12, 0, second, tzinfo=UTC),
        )

    return make


@pytest.fixture
def photo(tmp_path):
    """Copy a fixture from tests/fixtures/exif into tmp_path (writable) and return its path."""

    def copy(name: str, as_name: str | None = None) -> Path:
        target = tmp_path / (as_name or name)
        shutil.copyfile(FIXTURES / "exif" / name, target)
        target.chmod(0o644)
        return target

    return copy
