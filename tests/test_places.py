"""``phototagger places`` and ``learn --from-place``: two places the model never saw, made in
the test, grouped apart from a real scan's stored embeddings in a real SQLite index."""

import json

import numpy as np
import pytest
from sqlalchemy import select

from colour_photos import RED, colour_model, unnamed_places
from commands import run
from phototagger.index import Library
from phototagger.index import tables as orm
from phototagger.places import Place


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return colour_model(tmp_path_factory.mktemp("places-model"))


def scanned(tmp_path, model):
    """Six red photos (four with camera GPS), six blue ones and five cyan ones (none), and
    five grey ones (ordinary photos to the model: in no place), scanned; the command's
    common options."""
    root = unnamed_places(tmp_path / "library")
    common = ["--model", model.path, "--db", f"sqlite:///{tmp_path / 'index.sqlite3'}"]
    code, _, err = run("scan", root, *common, "--workers", "0", "--write", "none")
    assert code == 0, err
    return root, common


def test_places_groups_two_unknown_places_apart(model, tmp_path):
    root, common = scanned(tmp_path, model)
    code, out, err = run("places", "--format", "json", *common)
    assert code == 0, err
    places = json.loads(out)
    groups = [{path.split("/")[-2] for path in p["paths"]} for p in places]
    assert [len(p["paths"]) for p in places] == [6, 6, 5]  # largest first
    assert sorted(groups, key=str) == [{"blue"}, {"cyan"}, {"red"}]
    red = next(p for p in places if "/red/" in p["paths"][0])
    assert red["gps_photos"] == 4 and red["spread_km"] < 1
    assert red["latitude"] == pytest.approx(RED[0] + 0.0015, abs=1e-4)
    blue = next(p for p in places if p is not red)
    assert blue["gps_photos"] == 0 and blue["latitude"] is None
    code, again, _ = run("places", "--format", "json", *common)
    assert again == out  # the same ids, computed again
    code, out, _ = run("places", *common)
    assert f"place {red['place']}: 6 photos, camera GPS of 4: median" in out
    code, out, err = run("places", "--min-photos", "7", *common)
    assert code == 0 and out == "" and "no places" in err


def test_learning_a_place_names_its_photos(model, tmp_path):
    root, common = scanned(tmp_path, model)
    places = json.loads(run("places", "--format", "json", *common)[1])
    red = next(p for p in places if "/red/" in p["paths"][0])
    code, out, err = run("learn", "Red Fort", "--from-place", red["place"], *common)
    assert code == 0, err
    assert "learned Red Fort (at its photos' GPS median 28.65" in out
    assert "indexed photos of it now: 6 tagged" in out
    with Library(common[3]).session() as session:
        landmark = session.get(orm.Landmark, "red-fort")
        assert (landmark.latitude, landmark.longitude) == pytest.approx(
            (red["latitude"], red["longitude"]))
        tagged = session.scalars(select(orm.Photo.path).where(
            orm.Photo.landmark_slug == "red-fort")).all()
    assert sorted(tagged) == sorted(red["paths"])
    places = json.loads(run("places", "--format", "json", *common)[1])
    assert [len(p["paths"]) for p in places] == [6, 5]  # red, tagged now, is in none
    code, _, err = run("learn", "Red Again", "--from-place", red["place"], *common)
    assert code == 2 and f"no place {red['place']} in this index now" in err
    assert err.count("\n") == 1
    code, _, err = run("learn", "Blue Lake", "--from-place", "nonsense", *common)
    assert code == 2 and "not a place id: 'nonsense'" in err
    code, _, err = run("learn", "Blue Lake", root / "blue", "--from-place", places[0]["place"],
                       *common)
    assert code == 2 and "not both and not neither" in err
    code, out, err = run("learn", "Blue Lake", "--from-place", places[0]["place"], *common)
    assert code == 0 and "(at its photos" not in out  # no GPS: no position


def test_a_place_gives_its_position_only_when_its_gps_is_tight():
    def spread(km):
        return Place("5-0", [1], ["/p.jpg"], np.zeros((1, 2)), 10.0, 20.0, 3, km).position

    assert spread(0.4) == (10.0, 20.0) and spread(1.0) is None and spread(12.0) is None
    assert Place("5-0", [1], ["/p.jpg"], np.zeros((1, 2))).position is None
