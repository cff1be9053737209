"""The Places, Similar photos and Map pages through Flask's test client, on a real scan of real
JPEGs of places the model never saw (tests/colour_photos.py) into a real SQLite index."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import func, select

from colour_photos import RED
from commands import run
from phototagger.index import tables as orm
from phototagger.places import find_places
from phototagger.web.mapping import cell

MEDIAN = (RED[0] + 0.0015, RED[1] - 0.0015)  # of the four red photos' camera GPS


def places_of(library, model, min_photos: int = 5) -> list:
    with library.session() as session:
        return find_places(session, model.network_id, min_photos)


def kind_of(place) -> str:
    [kind] = {path.split("/")[-2] for path in place.paths}
    return kind


def by_kind(library, model, min_photos: int = 5) -> dict:
    return {kind_of(place): place for place in places_of(library, model, min_photos)}


def learned_state(library) -> tuple:
    """Everything learning changes: learned landmarks, gallery photos, photos' landmarks."""
    with library.session() as session:
        return (
            session.scalars(select(orm.Landmark.slug).where(orm.Landmark.learned)).all(),
            session.scalar(select(func.count()).select_from(orm.GalleryPhoto)),
            session.execute(select(orm.Photo.id, orm.Photo.landmark_slug,
                                   orm.Photo.suggested_slug).order_by(orm.Photo.id)).all(),
        )


def section(html: str, place_id: str) -> str:
    start = html.index(f'id="place-{place_id}"')
    end = html.find('<section class="card place"', start)
    return html[start:end if end > 0 else len(html)]


def test_the_places_page_shows_each_place_largest_first(places_client, places_library,
                                                        colour_landmarks):
    places = places_of(places_library, colour_landmarks)
    assert [(kind_of(p), len(p.paths)) for p in places] == [("blue", 6), ("red", 6),
                                                            ("cyan", 5)]
    response = places_client.get("/places")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert re.findall(r'id="place-([^"]+)"', html) == [p.id for p in places]
    assert "3 places" in html
    red = next(p for p in places if kind_of(p) == "red")
    shown = section(html, red.id)
    assert "Camera GPS on 4 of them" in shown and "the landmark stands" in shown
    assert 'name="latitude" inputmode="decimal" autocomplete="off" placeholder="-90 to 90"\n' \
        f'  value="{MEDIAN[0]:.6f}"' in shown
    assert f'value="{MEDIAN[1]:.6f}"' in shown
    thumbnails = re.findall(r'src="/photos/(\d+)/thumbnail.jpg"', shown)
    assert [int(t) for t in thumbnails] == red.photo_ids  # most typical first
    assert places_client.get(f"/photos/{thumbnails[0]}/thumbnail.jpg").status_code == 200
    assert f'data-api="/api/places/{red.id}/learn"' in shown
    blue = section(html, next(p for p in places if kind_of(p) == "blue").id)
    assert "None of them has camera GPS" in blue and 'value=""' in blue
    # --min-photos, as the command takes it: green's three photos are a place then
    html = places_client.get("/places?min_photos=3").get_data(as_text=True)
    assert len(re.findall(r'id="place-', html)) == 4
    assert "learning a landmark needs at least 5 photos" in html
    nav = re.search(r"<nav>.*?</nav>", html, re.S).group(0)
    assert 'href="/places" aria-current="page">Places' in nav and 'href="/map"' in nav
    for bad in ("1", "abc", "-3", "99999"):
        assert places_client.get(f"/places?min_photos={bad}").status_code == 400


def test_naming_a_place_learns_it_as_learn_from_place_does(places_client, places_library,
                                                           colour_landmarks):
    red = by_kind(places_library, colour_landmarks)["red"]
    response = places_client.post(f"/api/places/{red.id}/learn", json={
        "name": " Red Fort ", "city": "Delhi", "country": "India",
        "latitude": f"{MEDIAN[0]:.6f}", "longitude": f"{MEDIAN[1]:.6f}"})
    assert response.status_code == 200, response.json
    answer = response.json
    assert answer["message"].startswith(
        f"learned Red Fort (Delhi, India, at {MEDIAN[0]:.5f}, {MEDIAN[1]:.5f}) from 6 photos "
        "(6 new); they agree ")
    assert "indexed photos of it now: 6 tagged, 0 suggested" in answer["message"]
    assert (answer["photos"], answer["added"], answer["tagged"]) == (6, 6, 6)
    assert answer["url"] == "/library?landmark=Red+Fort"
    with places_library.session() as session:
        landmark = session.get(orm.Landmark, "red-fort")
        assert landmark.learned and (landmark.city, landmark.country) == ("Delhi", "India")
        assert (landmark.latitude, landmark.longitude) == pytest.approx(MEDIAN)
        tagged = session.scalars(select(orm.Photo.path).where(
            orm.Photo.landmark_slug == "red-fort")).all()
        gallery = session.scalars(select(orm.GalleryPhoto.source).where(
            orm.GalleryPhoto.slug == "red-fort")).all()
    assert sorted(tagged) == sorted(red.paths) == sorted(gallery)
    html = places_client.get("/places").get_data(as_text=True)
    assert red.id not in html and "2 places" in html  # tagged now, in no place
    library = places_client.get(answer["url"]).get_data(as_text=True)
    assert library.count('class="tile"') == 6
    # The same place named again is gone, as for the command.
    again = places_client.post(f"/api/places/{red.id}/learn", json={"name": "Red Again"})
    assert again.status_code == 400 and f"no place {red.id} in this index now" in \
        again.json["error"]


def test_a_place_named_without_coordinates_stands_at_its_tight_gps(places_client,
                                                                   places_library,
                                                                   colour_landmarks):
    places = by_kind(places_library, colour_landmarks)
    for kind, name in (("red", "Red Fort"), ("blue", "Blue Lake")):
        response = places_client.post(f"/api/places/{places[kind].id}/learn",
                                      json={"name": name, "latitude": "", "longitude": ""})
        assert response.status_code == 200, response.json
    with places_library.session() as session:
        red, blue = session.get(orm.Landmark, "red-fort"), session.get(orm.Landmark, "blue-lake")
        assert (red.latitude, red.longitude) == pytest.approx(MEDIAN)
        assert (blue.latitude, blue.longitude) == (None, None)  # no GPS: no position


def test_naming_a_place_refuses_bad_input_with_a_4xx_and_changes_nothing(
        places_client, places_library, colour_landmarks):
    red = by_kind(places_library, colour_landmarks)["red"]
    green = by_kind(places_library, colour_landmarks, 3)["green"]
    before = learned_state(places_library)
    url = f"/api/places/{red.id}/learn"
    refused = [
        (url, {}, 400, 'say which landmark: {"name": "Red Fort"}'),
        (url, {"name": "   "}, 400, "say which landmark"),
        (url, {"name": 7}, 400, "say which landmark"),
        (url, {"name": "R" * 201}, 400, "at most 200 characters"),
        (url, {"name": "Red Fort", "latitude": "100", "longitude": "77"}, 400,
         "coordinates out of range: 100.0, 77.0"),
        (url, {"name": "Red Fort", "latitude": 28.6, "longitude": -200}, 400,
         "coordinates out of range"),
        (url, {"name": "Red Fort", "latitude": "north", "longitude": "77"}, 400,
         "not a coordinate: 'north'"),
        (url, {"name": "Red Fort", "latitude": "28.6"}, 400, "give both"),
        (url, {"name": "Red Fort", "latitude": "nan", "longitude": "77"}, 400, "out of range"),
        (url, {"name": "Red Fort", "latitude": True, "longitude": 1}, 400,
         "latitude must be text or a number"),
        (url, {"name": "Red Fort", "city": ["Delhi"]}, 400, "city must be text or a number"),
        (url, {"name": "Colosseum"}, 400, "one of the model's own landmarks"),
        (f"/api/places/{green.id}/learn", {"name": "Green Park"}, 400,
         "3 usable photos of Green Park: learning a landmark needs at least 5"),
        ("/api/places/5-00000000/learn", {"name": "Red Fort"}, 400, "no place 5-00000000"),
        ("/api/places/nonsense/learn", {"name": "Red Fort"}, 404, "not a place id"),
    ]
    for target, body, status, message in refused:
        response = places_client.post(target, json=body)
        assert response.status_code == status, (body, response.json)
        assert message in response.json["error"], (body, response.json)
    form = places_client.post(url, data={"name": "Red Fort"})  # a plain cross-site form
    assert form.status_code == 415
    for header in ({"Origin": "http://evil.example"}, {"Referer": "http://evil.example/x"}):
        response = places_client.post(url, json={"name": "Red Fort"}, headers=header)
        assert response.status_code == 403 and "cross-site" in response.json["error"]
    assert learned_state(places_library) == before


def test_the_similar_page_lists_the_library_best_first_as_similar_does(
        places_client, places_library, colour_landmarks):
    red = by_kind(places_library, colour_landmarks)["red"]
    pid, path = red.photo_ids[0], red.paths[0]
    page = places_client.get(f"/photos/{pid}").get_data(as_text=True)
    assert f'href="/photos/{pid}/similar"' in page and ">Similar photos</a>" in page
    response = places_client.get(f"/photos/{pid}/similar?limit=8")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    grid = html[html.index('id="similar"'):]
    shown = [int(i) for i in re.findall(r'href="/photos/(\d+)"', grid)]
    similarities = [float(s) for s in re.findall(r"similarity (-?\d\.\d+)", grid)]
    assert len(shown) == len(similarities) == 8 and pid not in shown
    assert similarities == sorted(similarities, reverse=True)
    assert set(shown[:5]) == set(red.photo_ids[1:])  # the other red photos first
    code, out, err = run("similar", path, "--limit", "8", "--format", "json",
                         "--model", colour_landmarks.path, "--db", places_library.url)
    assert code == 0, err
    with places_library.session() as session:
        ids = {p.path: p.id for p in session.scalars(select(orm.Photo))}
    rows = json.loads(out)
    assert shown == [ids[row["path"]] for row in rows]  # the command's order exactly
    assert similarities == [pytest.approx(row["similarity"], abs=6e-4) for row in rows]
    assert "8 photos, the 8 most alike" in html and "limit=32" in html
    for bad in ("0", "x", "501"):
        assert places_client.get(f"/photos/{pid}/similar?limit={bad}").status_code == 400
    assert places_client.get("/photos/999/similar").status_code == 404


def test_the_map_pins_landmarks_and_estimated_positions_and_leads_to_their_photos(
        places_client, places_library, colour_landmarks):
    empty = places_client.get("/map").get_data(as_text=True)
    assert "No tagged photo shows a landmark with a known position yet." in empty
    red = by_kind(places_library, colour_landmarks)["red"]
    assert places_client.post(f"/api/places/{red.id}/learn",
                              json={"name": "Red Fort"}).status_code == 200
    response = places_client.get("/map")
    assert response.status_code == 200
    policy = response.headers["Content-Security-Policy"]
    assert "img-src 'self' data: https://tile.openstreetmap.org;" in policy
    assert "script-src 'self';" in policy and "tile.openstreetmap.org" not in \
        places_client.get("/places").headers["Content-Security-Policy"]
    html = response.get_data(as_text=True)
    pins = json.loads(re.search(r'<script type="application/json" id="map-pins">(.*?)</script>',
                                html, re.S).group(1))
    [landmark] = pins["landmarks"]
    assert (landmark["name"], landmark["count"]) == ("Red Fort", 6)
    assert (landmark["latitude"], landmark["longitude"]) == pytest.approx(MEDIAN)
    [estimate] = pins["estimates"]
    assert estimate["count"] == 2 and estimate["kind"] == "estimate"
    with places_library.session() as session:
        placed = {p.id: (p.estimated_latitude, p.estimated_longitude)
                  for p in session.scalars(select(orm.Photo).where(
                      orm.Photo.estimated_latitude.is_not(None)))}
    assert len(placed) == 2
    assert (estimate["latitude"], estimate["longitude"]) == pytest.approx(
        next(iter(placed.values())), abs=1e-3)
    for pin, expected in ((landmark, set(red.photo_ids)), (estimate, set(placed))):
        listed = places_client.get(pin["url"]).get_data(as_text=True)
        grid = listed[listed.index('id="photos"'):]
        assert {int(i) for i in re.findall(r'href="/photos/(\d+)"', grid)} == expected, pin
    assert "Photos placed from the library's own GPS photos" in places_client.get(
        estimate["url"]).get_data(as_text=True)
    assert "6 photos at 1\n  landmark " in html and "2 photos at 1\n  place " in html
    assert 'id="landmark-places"' in html and 'id="estimated-places"' in html
    for bad in ("1,2,3", "a,b,c,d", "2,0,1,1", "0,0,nan,1", "-100,0,1,1"):
        assert places_client.get(f"/library?estimated={bad}").status_code == 400, bad


def test_the_map_serves_its_vendored_files(places_client):
    html = places_client.get("/map").get_data(as_text=True)
    linked = re.findall(r'(?:src|href|data-outline)="(/static/[^"]+)"', html)
    assert {"/static/vendor/leaflet/leaflet.js", "/static/vendor/leaflet/leaflet.css",
            "/static/vendor/topojson-client/topojson-client.min.js", "/static/map.js",
            "/static/vendor/world-atlas/land-110m.json"} <= set(linked)
    for path in [*linked, "/static/vendor/leaflet/images/marker-icon.png",
                 "/static/vendor/leaflet/images/marker-shadow.png",
                 "/static/vendor/leaflet/images/layers.png"]:
        response = places_client.get(path)
        assert response.status_code == 200 and response.data, path
        response.close()
    outline = places_client.get("/static/vendor/world-atlas/land-110m.json").json
    assert outline["type"] == "Topology" and "land" in outline["objects"]
    assert "https://" not in "".join(re.findall(r'<(?:script|link)[^>]*>', html))  # no CDN


@pytest.mark.parametrize("value", [0.29, 28.65, 28.6577, -0.01, -0.015, 0.0, 179.999, -180.0,
                                   89.99, 1e-9, -1e-9])
def test_a_position_lies_in_the_box_its_pin_lists(value):
    south, west, north, east = cell(value, value / 2)
    assert south <= value < north and west <= value / 2 < east
    assert north - south == pytest.approx(0.01) and east - west == pytest.approx(0.01)


def test_the_package_data_holds_every_file_the_app_serves():
    """setup.cfg's globs do not recurse: a wheel leaves out any static folder they miss."""
    import configparser
    import glob
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    config = configparser.ConfigParser()
    config.read(root / "setup.cfg")
    patterns = config["options.package_data"]["phototagger"].split()
    packaged = {path for pattern in patterns
                for path in glob.glob(pattern, root_dir=root / "phototagger")}
    web = root / "phototagger" / "web"
    served = {str(path.relative_to(root / "phototagger"))
              for folder in ("static", "templates") for path in (web / folder).rglob("*")
              if path.is_file()}
    assert "web/static/vendor/leaflet/images/marker-icon.png" in served
    assert served - packaged == set()
