"""Positions from the library's own GPS: the rule (decision.place_from_library), and a real
scan of real JPEGs whose GPS is hidden from some, into a real SQLite index."""

import pytest
from sqlalchemy import select

from colour_photos import colour_model, photo
from commands import run
from images import gps_exif
from phototagger.decision import PLACE_WITHIN_S, place_from_library
from phototagger.index import Library
from phototagger.index import tables as orm

HERE, ELSEWHERE = (28.6562, 77.2410), (48.8584, 2.2945)


def test_the_rule():
    near = [(0.95, (HERE[0] + 0.001 * i, HERE[1]), None) for i in range(3)]
    found = place_from_library(near)
    assert found.latitude == pytest.approx(HERE[0] + 0.001) and found.photos == 3
    assert found.spread_km == pytest.approx(0.111, abs=0.01)
    assert place_from_library(near[:1]) is None  # one photo is not enough
    assert place_from_library([(0.5, p, None) for _, p, _ in near]) is None  # not alike enough
    far_apart = [*near[:2], (0.95, ELSEWHERE, None)]
    assert place_from_library(far_apart) is None  # they disagree: no position
    later = [(s, p, PLACE_WITHIN_S * 2) for s, p, _ in near]
    assert place_from_library(later) is None  # taken at another time
    assert place_from_library([(s, p, 3600.0) for s, p, _ in near]) is not None


def test_a_scan_places_gps_less_photos_from_the_library(tmp_path):
    model = colour_model(tmp_path / "model")
    root = tmp_path / "library"
    for i in range(6):  # red: four with camera GPS, two without; blue: none have GPS
        exif = gps_exif(HERE[0] + 0.001 * i, HERE[1]) if i < 4 else None
        photo(root / "red" / f"{i}.jpg", "red", 1000 + i, exif)
        photo(root / "blue" / f"{i}.jpg", "blue", 2000 + i)
    photo(root / "cyan" / "0.jpg", "cyan", 3000, gps_exif(*ELSEWHERE))
    db = f"sqlite:///{tmp_path / 'index.sqlite3'}"
    common = ["--model", model.path, "--db", db]
    code, out, err = run("scan", root, *common, "--workers", "0", "--write", "none")
    assert code == 0, err
    assert "placed 2 photos without GPS from the library's own GPS photos" in out
    with Library(db).session() as session:
        rows = {p.path.split("library/")[1]: p for p in session.scalars(select(orm.Photo))}
    placed = {path for path, p in rows.items() if p.estimated_latitude is not None}
    assert placed == {"red/4.jpg", "red/5.jpg"}  # never over camera GPS; blue matches no GPS
    assert rows["red/4.jpg"].estimated_latitude == pytest.approx(HERE[0] + 0.0015, abs=1e-4)
    assert rows["red/4.jpg"].estimated_photos == 4
    assert rows["red/0.jpg"].camera_latitude is not None
    code, out, _ = run("info", root / "red" / "4.jpg", "--db", db)
    assert "estimated position: 28.65" in out and "from 4 photos of this library" in out
    code, out, _ = run("info", root / "blue" / "0.jpg", "--db", db)
    assert "estimated position" not in out


def test_a_photo_gone_from_the_library_does_not_stop_the_next_estimate(tmp_path):
    """Embeddings outlive photos that went missing or failed: the estimate skips them."""
    model = colour_model(tmp_path / "model")
    root = tmp_path / "library"
    for i in range(4):
        photo(root / "red" / f"{i}.jpg", "red", 1000 + i, gps_exif(HERE[0], HERE[1]))
    db = f"sqlite:///{tmp_path / 'index.sqlite3'}"
    common = ["--model", model.path, "--db", db, "--workers", "0", "--write", "none"]
    assert run("scan", root, *common)[0] == 0
    (root / "red" / "0.jpg").unlink()  # missing now, its embedding still stored
    photo(root / "red" / "new.jpg", "red", 1010)  # a GPS-less photo to place
    code, out, err = run("scan", root, *common)
    assert code == 0, err
    assert "placed 1 photo" in out
