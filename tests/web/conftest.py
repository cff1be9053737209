"""A small real library for the app's tests: JPEGs on disk, scanned by the real scanner."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import OPEN_GATE, build_tiny_model
from phototagger.index import Library
from phototagger.model import LandmarkModel, read_meta, save_model_file
from phototagger.scan.pipeline import Scanner, ScanOptions
from phototagger.web import create_app

COLOURS = [(200, 60, 40), (40, 90, 200), (60, 160, 80), (230, 200, 60)]
#: Every answer plausible, none verified (as in tests/test_suggestions.py): margins that the
#: fixture network's evidence never reaches for a tag, and always reaches for a suggestion.
UNVERIFIED = {"tag_margin": 3.0, "suggest_margin": -4.0}


def jpeg_bytes(size: tuple[int, int] = (320, 240), seed: int = 0, orientation: int = 1) -> bytes:
    """A real JPEG with some structure (a gradient and a block), optionally EXIF-rotated."""
    image = Image.new("RGB", size, COLOURS[seed % len(COLOURS)])
    gradient = Image.linear_gradient("L").resize(size)
    image.paste((255, 255, 255), (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2))
    image = Image.blend(image, Image.merge("RGB", [gradient] * 3), 0.3)
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85, exif=exif.tobytes())
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels: a decompression bomb."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def png_bytes(size: tuple[int, int]) -> bytes:
    """A real RGBA PNG with structure, half transparent."""
    image = Image.open(io.BytesIO(jpeg_bytes(size))).convert("RGBA")
    image.putalpha(Image.linear_gradient("L").resize(size))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def model(tiny_model_path) -> LandmarkModel:
    return LandmarkModel.load(tiny_model_path, "cpu")


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
