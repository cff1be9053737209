"""The app through Flask's test client: predict, search, tag, untag, limits and refusals."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import piexif
import pytest
from PIL import Image
from sqlalchemy import select

from images import gps_exif, jpeg_bytes, png_bytes, png_claiming, write_jpeg
from phototagger import tags
from phototagger.cli import main as cli_main
from phototagger.index import Library, canonical
from phototagger.index import tables as orm
from phototagger.model import LandmarkModel
from phototagger.predict import predict_bytes
from phototagger.scan.pipeline import Scanner, ScanOptions
from phototagger.web import create_app
from phototagger.web import routes as web_routes
from phototagger.web.images import DecodeSlots
from tests.tags.exiftool import exiftool_json, needs_exiftool
from tiny_model import build_tiny_model


def upload(client, data: bytes, name: str = "holiday.jpg", **headers):
    return client.post(
        "/api/predict",
        data={"photo": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
        headers=headers,
    )


def photo_id(library, path) -> int:
    with library.session() as session:
        return library.photo_at(session, path).id


def add_row(library, path: str) -> int:
    """An index row pointing wherever a test likes, as a tampered database could."""
    with library.session() as session:
        photo = orm.Photo(path=path, status="ok", landmark_slug="colosseum", confidence=0.9,
                          tag_state="auto")
        session.add(photo)
        session.commit()
        return photo.id


# -- predict -----------------------------------------------------------------------------


def test_predict_gives_top5_with_places_and_an_upright_preview(client):
    response = upload(client, jpeg_bytes(size=(300, 200), orientation=6))
    assert response.status_code == 200, response.json
    answer = response.json
    assert answer["source"] == "holiday.jpg" and answer["error"] is None
    assert answer["confident"] is True  # the tiny model's threshold is 0
    assert len(answer["landmarks"]) == 5
    probabilities = [entry["probability"] for entry in answer["landmarks"]]
    assert probabilities == sorted(probabilities, reverse=True)
    first = answer["landmarks"][0]
    assert {"name", "city", "country", "latitude", "longitude", "map_url"} <= set(first)
    assert first["map_url"].startswith("https://www.openstreetmap.org/?mlat=")
    prefix = "data:image/jpeg;base64,"
    assert answer["preview"].startswith(prefix)
    preview = Image.open(io.BytesIO(base64.b64decode(answer["preview"][len(prefix):])))
    assert preview.size == (200, 300)  # EXIF orientation 6 applied: portrait


def test_predict_matches_the_core_prediction(client, model):
    data = jpeg_bytes(seed=2)
    expected = predict_bytes(model, data, "x.jpg").to_dict()["landmarks"]
    got = upload(client, data).json["landmarks"]
    assert [(e["slug"], e["probability"]) for e in got] == [
        (e["slug"], e["probability"]) for e in expected
    ]


def test_predict_says_when_no_landmark_is_confident(tmp_path, library):
    strict = LandmarkModel.load(build_tiny_model(tmp_path / "strict.pt", threshold=0.99), "cpu")
    answer = upload(create_app(strict, library).test_client(), jpeg_bytes()).json
    assert answer["confident"] is False and answer["threshold"] == 0.99
    assert len(answer["landmarks"]) == 5  # the guesses are still shown, marked unsure


def test_predict_says_a_featureless_image_shows_no_landmark(client):
    plain = io.BytesIO()
    Image.new("RGB", (320, 240), (255, 255, 255)).save(plain, "JPEG")  # an overexposed shot
    answer = upload(client, plain.getvalue(), name="white.jpg").json
    assert answer["reason"] == "featureless" and answer["confident"] is False
    assert answer["explanation"] == "no landmark: the image has next to no detail to go on"
    assert len(answer["landmarks"]) == 5  # the guesses are still shown, marked unsure
    assert upload(client, jpeg_bytes()).json["reason"] == "verified"


def test_predict_says_when_the_camera_was_too_far_from_the_landmark(client, model):
    data = jpeg_bytes(seed=2)
    best = predict_bytes(model, data, "x.jpg").candidates[0].landmark
    with_gps = io.BytesIO()  # the same pixels, with the camera on the other side of the Earth
    piexif.insert(piexif.dump(gps_exif(-best.latitude, best.longitude - 179)), data, with_gps)
    answer = upload(client, with_gps.getvalue()).json
    assert answer["landmarks"][0]["slug"] == best.slug and answer["confident"] is False
    assert answer["camera_gps"] == pytest.approx([-best.latitude, best.longitude - 179], abs=1e-3)
    assert answer["far_from_camera_km"] > 10_000 and answer["reason"] == "far_from_camera"
    assert upload(client, data).json["far_from_camera_km"] is None  # no GPS: no veto


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"just some text, not a photo", "not an image"),
        (b"", "empty"),
        (jpeg_bytes()[:300], "jpeg"),
        (png_claiming(30000, 30000), "too large"),
    ],
    ids=["text", "empty", "truncated", "decompression-bomb"],
)
def test_predict_refuses_what_is_not_a_safe_image(client, data, reason):
    response = upload(client, data, name="bad.png")
    assert response.status_code == 422
    assert reason in response.json["error"]
    assert response.json["error"].startswith("bad.png: ")


def test_an_upload_past_the_pixel_limit_is_refused_from_its_header(client):
    """Refused before decoding: a header claiming 64 MP over data for a few pixels says so,
    where a decoder would have found the data truncated."""
    response = upload(client, png_claiming(8000, 8000), name="claims.png")
    assert response.status_code == 422
    assert response.json == {"error": "claims.png: image too large: 8000x8000 is 64 MP, over "
                                      "the limit of 50 MP"}


def test_an_upload_is_decoded_once_for_its_preview_and_the_model(client, monkeypatch):
    from phototagger import imaging

    data = png_bytes((2400, 1800))  # no DCT draft: one decode, reduced twice
    opened = []
    real_open = imaging.Image.open
    monkeypatch.setattr(imaging.Image, "open", lambda *a, **k: opened.append(1) or real_open(
        *a, **k))
    answer = upload(client, data, name="big.png").json
    assert len(opened) == 1
    model = client.application.extensions["phototagger"]["model"]
    expected = predict_bytes(model, data, "big.png").to_dict()["landmarks"]
    assert [(e["slug"], e["probability"]) for e in answer["landmarks"]] == [
        (e["slug"], e["probability"]) for e in expected]  # the scan's input, exactly
    preview = Image.open(io.BytesIO(base64.b64decode(answer["preview"].split(",", 1)[1])))
    assert preview.size == (1280, 960)


def test_a_decode_that_finds_no_free_slot_in_time_is_told_to_retry(model, library, photos):
    slots = DecodeSlots(count=1, wait=0)
    client = create_app(model, library, decoding=slots).test_client()
    pid = photo_id(library, photos / "photo0.jpg")
    with slots.held():  # another upload decoding
        for response in (upload(client, jpeg_bytes()), client.get(f"/photos/{pid}/preview.jpg")):
            assert response.status_code == 503 and response.headers["Retry-After"] == "5"
            assert "busy" in (response.json or {}).get("error", response.get_data(as_text=True))
    assert upload(client, jpeg_bytes()).status_code == 200  # the slot is free again
    assert client.get(f"/photos/{pid}/preview.jpg").status_code == 200


def test_predict_needs_a_file(client):
    response = client.post("/api/predict", data={}, content_type="multipart/form-data")
    assert response.status_code == 400 and "choose a photo" in response.json["error"]
    for top_k in ("500", "abc", "2.5", "-1", ""):  # never silently 5
        response = client.post("/api/predict", data={
            "photo": (io.BytesIO(jpeg_bytes()), "a.jpg"), "top_k": top_k})
        assert response.status_code == 400 and "top_k" in response.json["error"], top_k
    response = client.post("/api/predict", data={"photo": (io.BytesIO(jpeg_bytes()), "a.jpg"),
                                                 "top_k": "3"})
    assert len(response.json["landmarks"]) == 3


def test_upload_limit_is_a_friendly_413(model, library):
    client = create_app(model, library, upload_limit=20_000).test_client()
    big = jpeg_bytes(size=(1200, 900))
    assert len(big) > 20_000
    response = upload(client, big)
    assert response.status_code == 413
    assert response.json == {"error": "the upload is too large: the limit is 20 kB"}
    page = client.get("/")
    assert b'data-limit="20000"' in page.data


def test_a_form_of_too_many_parts_is_not_called_too_large(client):
    parts = {f"field{index}": "x" for index in range(1200)}
    response = client.post("/api/predict", data={**parts, "photo": (io.BytesIO(jpeg_bytes()),
                                                                    "a.jpg")})
    assert response.status_code == 413
    assert response.json["error"].startswith("the form has too many parts or too long a field "
                                             "(at most 1000 parts, 500,000 bytes a field)")
    assert "25 MB" not in response.json["error"]


def test_an_error_repeats_only_the_start_of_a_long_name(client, library, photos):
    pid = photo_id(library, photos / "photo0.jpg")
    response = client.post(f"/api/photos/{pid}/tag", json={"landmark": "Atlantis" * 625_000})
    assert response.status_code == 400
    assert response.json["error"].startswith(
        f"unknown landmark '{'Atlantis' * 9}Atlanti…': see `phototagger landmarks`")
    long_name = "holiday-" * 10_000 + ".png"
    response = upload(client, b"not an image", name=long_name)
    assert response.status_code == 422
    assert response.json["error"] == f"{long_name[:79]}…: not an image (unrecognised content)"
    assert upload(client, jpeg_bytes(), name=long_name).json["source"] == f"{long_name[:79]}…"


def test_uploads_stay_in_memory(client, monkeypatch):
    """A big upload must not be spooled to a temporary file (Werkzeug's default past 500 kB)."""
    import tempfile

    import werkzeug.formparser

    def no_disk(*args, **kwargs):
        raise AssertionError("an upload was about to be written to disk")

    monkeypatch.setattr(werkzeug.formparser, "SpooledTemporaryFile", no_disk)
    for name in ("SpooledTemporaryFile", "TemporaryFile", "NamedTemporaryFile"):
        monkeypatch.setattr(tempfile, name, no_disk)
    noisy = Image.effect_noise((1000, 1000), 90).convert("RGB")
    buffer = io.BytesIO()
    noisy.save(buffer, "JPEG", quality=95)
    assert buffer.tell() > 600_000
    assert upload(client, buffer.getvalue()).status_code == 200


# -- search and pages ---------------------------------------------------------------------


def test_search_by_landmark_country_and_city(client, library, photos):
    every = client.get("/api/photos").json
    assert every["count"] == 4 and not every["truncated"]
    shown = every["photos"][0]
    landmark = shown["landmark"]
    for query in (
        {"landmark": landmark["name"].upper()},
        {"landmark": landmark["name"][:4].lower()},
        {"city": landmark["city"]},
    ):
        found = client.get("/api/photos", query_string=query).json["photos"]
        assert shown["id"] in [photo["id"] for photo in found], query
        assert all(photo["landmark"]["slug"] == landmark["slug"] for photo in found
                   if query.get("landmark") == landmark["name"].upper())
    with library.session() as session:
        expected = {p.id for p in library.find(session, country="IT")}
    got = client.get("/api/photos", query_string={"country": "it"}).json["photos"]
    assert {photo["id"] for photo in got} == expected
    assert client.get("/api/photos", query_string={"landmark": "atlantis"}).json["count"] == 0
    assert client.get("/api/photos", query_string={"limit": "2"}).json["truncated"] is True
    bad = client.get("/api/photos", query_string={"min_confidence": "lots"})
    assert bad.status_code == 400 and "number" in bad.json["error"]
    trip = client.get("/api/photos", query_string={"under": str(photos / "trip")}).json
    assert sorted(p["path"] for p in trip["photos"]) == sorted(
        str(p) for p in (photos / "trip").glob("*.jpg"))  # as query --under: that folder only
    assert client.get("/api/photos", query_string={"under": "/etc"}).json["count"] == 0
    for odd in ("trip", "/a\x00b"):
        assert client.get("/api/photos", query_string={"under": odd}).status_code == 400


def test_library_page_lists_thumbnails_and_filters(client):
    every = client.get("/api/photos").json["photos"]
    name = every[0]["landmark"]["name"]
    page = client.get("/library", query_string={"landmark": name})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    matching = [p for p in every if p["landmark"]["name"] == name]
    assert html.count('class="tile"') == len(matching)
    for photo in matching:
        assert f'/photos/{photo["id"]}/thumbnail.jpg' in html
    empty = client.get("/library", query_string={"country": "Atlantis"}).get_data(as_text=True)
    assert "No tagged photo matches" in empty


def test_thumbnail_and_preview_are_small_upright_cached_jpegs(client, library, photos):
    pid = photo_id(library, photos / "photo0.jpg")
    response = client.get(f"/photos/{pid}/thumbnail.jpg")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert max(Image.open(io.BytesIO(response.data)).size) <= 320
    assert response.headers["Cache-Control"] in ("private, max-age=3600", "max-age=3600, private")
    again = client.get(f"/photos/{pid}/thumbnail.jpg",
                       headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304
    preview = client.get(f"/photos/{pid}/preview.jpg")
    assert preview.status_code == 200
    for image in (response, preview):  # another site's page may not embed them
        assert image.headers["Cross-Origin-Resource-Policy"] == "same-origin"


def test_rotated_photo_thumbnail_is_upright(client, library, photos, model):
    (photos / "turned.jpg").write_bytes(jpeg_bytes(size=(300, 200), orientation=8))
    Scanner(library, model, ScanOptions(workers=0, write="none")).run([photos])
    response = client.get(f"/photos/{photo_id(library, photos / 'turned.jpg')}/thumbnail.jpg")
    assert Image.open(io.BytesIO(response.data)).size == (200, 300)


def test_photo_page_shows_details_and_correction_forms(client, library, photos):
    pid = photo_id(library, photos / "trip" / "photo1.jpg")
    html = client.get(f"/photos/{pid}").get_data(as_text=True)
    assert "photo1.jpg" in html and "What the model saw" in html
    assert html.count('class="guess"') == 5
    assert "openstreetmap.org" in html
    assert f"/api/photos/{pid}/tag" in html and f"/api/photos/{pid}/untag" in html
    assert "write it into the file" in html


def test_pages_render_with_security_headers(client):
    for path in ("/", "/library", "/about", "/photos/1"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/style.css").status_code == 200


# -- serving only from the scanned roots ---------------------------------------------------

IMAGE_ROUTES = ("/photos/{}/thumbnail.jpg", "/photos/{}/preview.jpg", "/photos/{}")


def assert_refused(client, pid: int, status: int) -> None:
    for route in IMAGE_ROUTES:
        response = client.get(route.format(pid))
        assert response.status_code == status, route
        assert response.mimetype == "text/html"
        assert "Traceback" not in response.get_data(as_text=True)
    for action in ("tag", "untag"):
        response = client.post(f"/api/photos/{pid}/{action}", json={"landmark": "Colosseum"})
        assert response.status_code == status, action
        assert "error" in response.json


def test_unknown_ids_are_404(client):
    assert_refused(client, 999, 404)
    assert "no photo 999" in client.get("/photos/999").get_data(as_text=True)


def test_a_row_outside_the_roots_is_refused(client, library, tmp_path):
    pid = add_row(library, str(tmp_path / "outside" / "secret.jpg"))
    assert_refused(client, pid, 403)
    assert "outside the scanned folders" in client.get(f"/photos/{pid}").get_data(as_text=True)


def test_dot_dot_in_a_stored_path_is_refused(client, library, photos):
    pid = add_row(library, f"{photos}/../outside/secret.jpg")
    assert_refused(client, pid, 403)


def test_a_symlink_out_of_the_roots_is_refused(client, library, photos, tmp_path, model):
    link = photos / "escape.jpg"
    os.symlink(tmp_path / "outside" / "secret.jpg", link)
    Scanner(library, model, ScanOptions(workers=0, write="none")).run([photos])
    with library.session() as session:
        row = library.photo_at(session, link)
    pid = row.id if row is not None else add_row(library, str(link))
    assert_refused(client, pid, 403)


def test_the_library_lists_only_what_it_serves(client, review_client, library, review_library,
                                              photos, tmp_path):
    """An older scan indexed photos through a folder link to elsewhere: not listed, since
    their images are refused."""
    os.symlink(tmp_path / "outside", photos / "elsewhere")
    for app_client, index in ((client, library), (review_client, review_library)):
        pid = add_row(index, str(photos / "elsewhere" / "secret.jpg"))
        with index.session() as session:
            session.get(orm.Photo, pid).suggested_slug = "colosseum"
            session.commit()
        assert_refused(app_client, pid, 403)
        for state in ("tagged", "all"):
            listed = app_client.get("/api/photos", query_string={"state": state}).json
            assert pid not in [photo["id"] for photo in listed["photos"]], state
            page = app_client.get("/library", query_string={"state": state}).get_data(
                as_text=True)
            assert f"/photos/{pid}/thumbnail.jpg" not in page
        assert app_client.get("/api/photos", query_string={"state": "all"}).json["count"] == 4
    review = review_client.get("/review").get_data(as_text=True)
    assert review.count('class="review-item"') == 4


def test_a_root_scanned_through_a_symlink_is_served(tmp_path, model):
    real = tmp_path / "real"
    real.mkdir()
    (real / "photo.jpg").write_bytes(jpeg_bytes())
    os.symlink(real, tmp_path / "link")
    library = Library(f"sqlite:///{tmp_path}/linked.sqlite3")
    Scanner(library, model, ScanOptions(workers=0, write="none")).run([tmp_path / "link"])
    client = create_app(model, library).test_client()
    pid = photo_id(library, canonical(tmp_path / "link" / "photo.jpg"))  # indexed as real/
    assert client.get(f"/photos/{pid}/thumbnail.jpg").status_code == 200


@pytest.mark.parametrize(
    "path",
    ["/photos/..%2f..%2fetc%2fpasswd", "/photos/%2fetc%2fpasswd/thumbnail.jpg",
     "/static/../../etc/passwd", "/static/%2e%2e/__init__.py", "/photos/-1/thumbnail.jpg",
     "/photos/99999999999999999999999", "/photos/9223372036854775808/preview.jpg"],
)
def test_raw_paths_are_never_served(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert b"root:" not in response.data and b"create_app" not in response.data


def test_an_id_past_64_bits_is_no_photo(client):
    huge = "99999999999999999999999"  # past SQLite's integers
    for response in (client.get(f"/photos/{huge}/thumbnail.jpg"), client.get(f"/photos/{huge}"),
                     client.post(f"/api/photos/{huge}/tag", json={"landmark": "Colosseum"}),
                     client.post(f"/api/photos/{huge}/untag", json={})):
        assert response.status_code == 404
        text = response.json["error"] if response.is_json else response.get_data(as_text=True)
        assert f"no photo {huge} in the index" in text
    page = client.get(f"/photos/{'9' * 4000}")  # as many digits as Python parses, cut short
    assert page.status_code == 404 and "9" * 100 not in page.get_data(as_text=True)


def test_deeply_nested_json_is_a_400(client, library, photos):
    pid = photo_id(library, photos / "photo0.jpg")
    for url in (f"/api/photos/{pid}/tag", f"/api/photos/{pid}/untag", "/api/review"):
        response = client.post(url, data="[" * 100_000, content_type="application/json")
        assert response.status_code == 400, url
        assert response.json == {"error": "the JSON is nested too deeply: send a flat object"}


# -- corrections -------------------------------------------------------------------------


def test_tag_confirms_a_landmark_through_corrections(client, library, photos):
    pid = photo_id(library, photos / "photo0.jpg")
    response = client.post(f"/api/photos/{pid}/tag",
                           json={"landmark": "tour eiffel", "write": "none"})
    assert response.status_code == 200, response.json
    assert response.json["ok"] and "confirmed as Eiffel Tower" in response.json["message"]
    assert response.json["photo"]["state"] == "confirmed"
    with library.session() as session:
        row = session.get(orm.Photo, pid)
        assert (row.landmark_slug, row.tag_state, row.confidence) == ("eiffel-tower",
                                                                      "confirmed", None)
    found = client.get("/api/photos", query_string={"landmark": "eiffel"}).json["photos"]
    assert pid in [photo["id"] for photo in found]
    page = client.get("/library", query_string={"landmark": "eiffel"}).get_data(as_text=True)
    assert "confirmed by you" in page
    assert "Confirmed by you." in client.get(f"/photos/{pid}").get_data(as_text=True)


@needs_exiftool
def test_the_app_writes_as_serve_was_told(model, tmp_path):
    """serve --write sidecar --no-position (or the config file's write and position): the
    app's confirmations leave the original alone and write no estimated position."""
    path = write_jpeg(tmp_path / "photos" / "a.jpg", exif={"0th": {piexif.ImageIFD.Make: b"X"}})
    library = Library(f"sqlite:///{tmp_path}/index.sqlite3")
    Scanner(library, model, ScanOptions(workers=0, write="none")).run([path.parent])
    original = path.read_bytes()
    for position, written in ((True, True), (False, False)):
        client = create_app(model=model, library=library, write="sidecar",
                            estimate_position=position).test_client()
        response = client.post(f"/api/photos/{photo_id(library, path)}/tag",
                               json={"landmark": "Colosseum" if position else "Eiffel Tower"})
        assert response.status_code == 200, response.json
        assert path.read_bytes() == original
        sidecar = exiftool_json(Path(f"{path}.xmp"))
        assert ("XMP-exif:GPSLatitude" in sidecar) is written, sidecar
    page = client.get(f"/photos/{photo_id(library, path)}").get_data(as_text=True)
    assert 'name="write" value="sidecar"' in page and 'value="embed"' not in page.replace(
        '<option value="embed">', "")
    assert "write it into a sidecar" in client.get("/review").get_data(as_text=True)


def test_tag_refuses_unknown_or_ambiguous_landmarks(client, library, photos):
    pid = photo_id(library, photos / "photo0.jpg")
    unknown = client.post(f"/api/photos/{pid}/tag", json={"landmark": "Atlantis"})
    assert unknown.status_code == 400 and "unknown landmark" in unknown.json["error"]
    for body in ({}, {"landmark": "  "}, {"landmark": "Colosseum", "write": "everywhere"}):
        assert client.post(f"/api/photos/{pid}/tag", json=body).status_code == 400


def test_tag_names_a_new_landmark_when_given_its_place(client, library, photos):
    """As `tag --landmark NEW --city --country --lat --lon`: the page asks for the place."""
    pid = photo_id(library, photos / "photo0.jpg")
    page = client.get(f"/photos/{pid}").get_data(as_text=True)
    assert '<fieldset class="new-place" hidden disabled>' in page
    assert all(f'name="{field}"' in page for field in ("city", "country", "latitude",
                                                      "longitude"))
    url = f"/api/photos/{pid}/tag"
    unknown = client.post(url, json={"landmark": "Niagara Falls", "write": "none"})
    assert unknown.status_code == 400 and unknown.json["unknown_landmark"] is True
    assert unknown.json["error"] == ("unknown landmark 'Niagara Falls': see `phototagger "
                                     "landmarks`, or give its place (city, country, latitude, "
                                     "longitude) to name a new one")
    place = {"city": "Niagara Falls", "country": "Canada", "latitude": "43.0799",
             "longitude": "-79.0747"}
    for bad, message in (({"latitude": "91"}, "coordinates out of range"),
                         ({"longitude": ""}, "give both"),
                         ({"latitude": "high"}, "not a coordinate"),
                         ({"country": {"name": "Canada"}}, "country must be text")):
        response = client.post(url, json={"landmark": "Niagara Falls", "write": "none",
                                           **place, **bad})
        assert response.status_code == 400 and message in response.json["error"], bad
        assert "unknown_landmark" not in response.json
    long = client.post(url, json={"landmark": "N" * 201, "write": "none", **place})
    assert long.status_code == 400 and "at most 200 characters" in long.json["error"]
    with library.session() as session:
        assert session.get(orm.Landmark, "niagara-falls") is None
    response = client.post(url, json={"landmark": "Niagara Falls", "write": "none", **place})
    assert response.status_code == 200, response.json
    assert response.json["message"] == "confirmed as Niagara Falls"
    assert response.json["photo"]["landmark"]["city"] == "Niagara Falls"
    with library.session() as session:
        landmark = session.get(orm.Landmark, "niagara-falls")
        assert landmark.learned and (landmark.country, landmark.latitude, landmark.longitude) \
            == ("Canada", 43.0799, -79.0747)
        photo = session.get(orm.Photo, pid)
        assert (photo.landmark_slug, photo.tag_state) == ("niagara-falls", "confirmed")
        gallery = session.scalars(select(orm.GalleryPhoto.source)).all()
    assert gallery == [photo.path]  # learned from the photos a person tags with it
    # A known name with place fields filled in is that landmark; the fields change nothing.
    other = photo_id(library, photos / "trip" / "photo1.jpg")
    known = client.post(f"/api/photos/{other}/tag", json={"landmark": "Niagara Falls",
                                                          "write": "none", "city": "Elsewhere",
                                                          "latitude": "1", "longitude": "2"})
    assert known.status_code == 200 and known.json["photo"]["landmark"]["latitude"] == 43.0799


def test_tag_writes_into_the_file_and_untag_takes_it_back(client, library, photos):
    path = photos / "photo0.jpg"
    pid = photo_id(library, path)
    original = path.read_bytes()
    response = client.post(f"/api/photos/{pid}/tag", json={"landmark": "Colosseum"})
    assert response.status_code == 200, response.json
    assert "written to" in response.json["message"]
    assert tags.read_tags(path) is not None
    response = client.post(f"/api/photos/{pid}/untag", json={})
    assert response.status_code == 200, response.json
    assert response.json["photo"]["state"] == "removed"
    assert response.json["photo"]["landmark"] is None
    assert tags.read_tags(path) is None
    page = client.get(f"/photos/{pid}").get_data(as_text=True)
    assert "You removed its landmark" in page and "Remove the landmark" not in page
    assert Image.open(path).tobytes() == Image.open(io.BytesIO(original)).tobytes()


def test_untag_keeps_the_photo_out_of_search(client, library, photos):
    pid = photo_id(library, photos / "photo0.jpg")
    assert client.post(f"/api/photos/{pid}/untag", json={}).status_code == 200
    assert pid not in [p["id"] for p in client.get("/api/photos").json["photos"]]


def test_corrections_need_json(client, library, photos):
    pid = photo_id(library, photos / "photo0.jpg")
    form = client.post(f"/api/photos/{pid}/tag", data={"landmark": "Colosseum"})
    assert form.status_code == 415
    assert client.post(f"/api/photos/{pid}/untag").status_code == 415


def test_cross_site_writes_are_refused(client, library, photos):
    pid = photo_id(library, photos / "photo0.jpg")
    body = {"landmark": "Colosseum", "write": "none"}
    for header in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                   {"Referer": "http://evil.example/page"}):
        response = client.post(f"/api/photos/{pid}/tag", json=body, headers=header)
        assert response.status_code == 403 and "cross-site" in response.json["error"], header
    assert upload(client, jpeg_bytes(), Origin="http://evil.example").status_code == 403
    same = client.post(f"/api/photos/{pid}/tag", json=body,
                       headers={"Origin": "http://localhost"})
    assert same.status_code == 200


@pytest.mark.parametrize("bound", ["127.0.0.1", "0.0.0.0", "192.168.1.20", "::"])
def test_dns_rebinding_is_refused_on_every_binding(model, library, bound):
    client = create_app(model, library, host_names=["photos.lan"]).test_client()
    at = {"SERVER_NAME": bound}
    for host in ("127.0.0.1:8000", "192.168.1.20:8000", "[::1]:8000", "[fe80::1]", "localhost",
                 "LOCALHOST.:8000", "photos.lan:8000", "Photos.Lan."):
        assert client.get("/", environ_overrides=at, headers={"Host": host}).status_code == 200
    for host in ("evil.example:8000", "photos.lan.evil.example", "localhost.evil.example",
                 "[not-an-address", "x" * 5000):
        response = client.get("/api/photos", environ_overrides=at, headers={"Host": host})
        assert response.status_code == 403, host
        assert response.json["error"].startswith("this app does not answer to the name")
        assert len(response.json["error"]) < 200 and "--allow-host NAME" in response.json["error"]


def test_the_app_knows_the_names_of_its_machine():
    import socket

    from phototagger.web import own_host_names

    names = own_host_names("0.0.0.0", ["Photos.Lan."])
    assert {socket.gethostname().lower(), socket.getfqdn().lower(), "photos.lan"} <= names
    assert "0.0.0.0" not in names and "nas.local" in own_host_names("nas.local")


# -- errors, about, serving ---------------------------------------------------------------


def test_unexpected_errors_are_messages_not_tracebacks(client, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(web_routes, "model_facts", broken)
    monkeypatch.setattr(web_routes, "predict_decoded", broken)
    page = client.get("/about")
    assert page.status_code == 500 and page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    assert "something went wrong" in text
    assert "Traceback" not in text and "secret internals" not in text
    api = upload(client, jpeg_bytes())
    assert api.status_code == 500 and "something went wrong" in api.json["error"]
    missing = client.get("/api/nothing-here")
    assert missing.status_code == 404 and "error" in missing.json


def test_about_page_reflects_on_the_model(tmp_path, library):
    measured = build_tiny_model(
        tmp_path / "measured.pt",
        metrics={"val_top1": 0.8123, "val_top5": 0.95, "ece": 0.031, "nll": 0.22,
                 "per_class": {"colosseum": {"top1": 0.41}, "taj-mahal": 0.97,
                               "eiffel-tower": 0.6}},
        training={"data": "landmarks/train", "images": 6589, "val_images": 988, "lr": 0.002,
                  "per_class": {"colosseum": 120, "taj-mahal": 300}},
    )
    client = create_app(LandmarkModel.load(measured, "cpu"), library).test_client()
    html = client.get("/about").get_data(as_text=True)
    assert "81.2%" in html and "95.0%" in html and "0.031" in html
    assert "nll" not in html and "22.0%" not in html  # not a share: left out, never a percentage
    assert html.index("Colosseum: 41%") < html.index("Eiffel Tower: 60%")
    assert "6589" in html and "(988 of them)" in html and "Known weaknesses" in html
    assert "fewest: Colosseum 120, Taj Mahal 300" in html
    assert "<dt>lr</dt><dd>0.002</dd>" in html  # other settings under "details"
    assert "only knows its 6 landmarks" in html
    assert 'id="open-set"' not in html  # not measured: no open-set figures


def test_about_page_states_the_open_set_figures(tmp_path, library):
    measured = build_tiny_model(tmp_path / "measured.pt", metrics={"open_set": {
        "known_tagged_right": 0.812, "known_precision": 0.991, "ordinary_tagged": 0.0042,
        "unknown_tagged": 0.153, "mix_precision": 0.87,
        "ordinary_tagged_per_kind": {"flowers": 0.0125, "sports_outdoor": 0.0}}})
    client = create_app(LandmarkModel.load(measured, "cpu"), library).test_client()
    html = client.get("/about").get_data(as_text=True)
    for figure in ("81.2%", "99.1%", "0.4%", "15.3%", "87.0%"):
        assert figure in html
    assert "flowers 1.2%, sports outdoor 0.0%" in html
    said = " ".join(html.split())
    assert "(it did for 15% of the photos of landmarks a model did not know)" in said
    for name in ("Hagia Sophia", "Statue of Liberty", "Dome of the Rock", "Jerusalem"):
        assert name in html


def test_about_page_copes_without_measurements(client):
    html = client.get("/about").get_data(as_text=True)
    assert "carries no measurements" in html
    assert "tiny-test-model" in html


def test_serve_binds_to_loopback_by_default():
    host = next(p for p in cli_main.commands["serve"].params if p.name == "host")
    assert host.default == "127.0.0.1"


# -- suggestions: browse every state, review, confirm, reject -----------------------------


def suggested_photos(library) -> dict[int, tuple[Path, str]]:
    """Each suggested photo's path and suggested landmark (slug), by id."""
    with library.session() as session:
        return {p.id: (Path(p.fs_path), p.suggested_slug)
                for p in library.find(session, state="suggested")}


def row(library, pid: int) -> orm.Photo:
    with library.session() as session:
        return session.get(orm.Photo, pid)


def test_every_state_can_be_browsed(review_client, review_library):
    assert review_client.get("/api/photos").json["count"] == 0  # nothing is tagged
    found = review_client.get("/api/photos", query_string={"state": "suggested"}).json
    assert found["count"] == 4
    for photo in found["photos"]:
        assert photo["state"] == "suggested" and photo["landmark"] is None
        assert photo["suggestion"]["slug"] and photo["decision"] == "unverified"
    counts = {state: review_client.get("/api/photos", query_string={"state": state}).json[
        "count"] for state in ("tagged", "suggested", "none", "person", "all")}
    assert counts == {"tagged": 0, "suggested": 4, "none": 0, "person": 0, "all": 4}
    name = found["photos"][0]["suggestion"]["name"]  # a landmark filter finds suggestions too
    same = review_client.get("/api/photos", query_string={"state": "suggested",
                                                          "landmark": name}).json["photos"]
    assert found["photos"][0]["id"] in [photo["id"] for photo in same]
    bad = review_client.get("/api/photos", query_string={"state": "maybe"})
    assert bad.status_code == 400 and bad.json["error"].startswith("state must be one of")
    assert review_client.get("/library", query_string={"state": "maybe"}).status_code == 400


def test_the_library_page_marks_suggestions_as_suggestions(review_client):
    default = review_client.get("/library").get_data(as_text=True)
    assert 'class="tile"' not in default and "No tagged photos yet" in default
    html = review_client.get("/library", query_string={"state": "suggested"}).get_data(
        as_text=True)
    assert html.count('data-state="suggested"') == 4
    assert html.count("suggested, not in the file") == 4 and "% sure" not in html
    assert '<option value="suggested" selected>' in html and 'href="/review"' in html
    every = review_client.get("/library", query_string={"state": "all"}).get_data(as_text=True)
    assert every.count('class="tile"') == 4
    none = review_client.get("/library", query_string={"state": "none"}).get_data(as_text=True)
    assert "No photo without a landmark in the index." in none


def test_photo_page_shows_the_suggestion_its_reason_and_evidence(review_client, review_library):
    pid, (_, slug) = next(iter(suggested_photos(review_library).items()))
    html = review_client.get(f"/photos/{pid}").get_data(as_text=True)
    assert "Suggested, not written into the file." in html
    assert "not written into the file</strong>" in html
    assert f'data-api="/api/photos/{pid}/tag"' in html and f'value="{slug}"' in html
    assert f'data-api="/api/photos/{pid}/untag"' in html and "Reject the suggestion" in html
    assert 'id="write-top"' not in html  # the suggestion's Confirm is the one to press
    why = html[html.index('<p class="why">'):].split("</p>")[0]
    assert "looks most like" in why and why.endswith("against 3.00 needed): a suggestion")
    assert html.count('class="guess-evidence"') == 5  # every prediction's evidence
    with review_library.session() as session:
        evidence = [(p.similarity, p.ordinary) for p in session.get(orm.Photo, pid).predictions]
    assert all(similarity is not None for similarity, _ in evidence)
    for similarity, ordinary in evidence:
        assert (f"like its known photos {similarity:.3f}; like ordinary photos of no landmark "
                f"{ordinary:.3f}</div>") in html


def test_photo_page_of_a_tagged_photo_says_why(client, library, photos):
    html = client.get(f"/photos/{photo_id(library, photos / 'photo0.jpg')}").get_data(
        as_text=True)
    why = html[html.index('<p class="why">'):].split("</p>")[0]
    assert why.endswith("more alike than ordinary photos): tagged")
    assert "Suggested" not in html and 'id="write-top"' in html


def test_review_page_lists_every_suggestion(review_client, review_library, client):
    suggested = suggested_photos(review_library)
    html = review_client.get("/review").get_data(as_text=True)
    assert html.count('class="review-item"') == 4 and 'id="select-all"' in html
    assert "Confirm selected" in html and "Reject selected" in html
    assert 'id="review-empty" class="count" hidden' in html
    with review_library.session() as session:
        for pid, (_, slug) in suggested.items():
            assert f'/photos/{pid}/thumbnail.jpg' in html and f'value="{pid}"' in html
            assert review_library.landmark(session, slug).name in html
    assert html.count('<p class="why">') == 4 and html.count("a suggestion</p>") == 4
    assert '<a href="/review" aria-current="page">Review</a>' in html
    empty = client.get("/review").get_data(as_text=True)  # every photo there is tagged
    assert "No suggestions to review." in empty and 'class="review-item"' not in empty
    assert 'id="review-empty" class="count" >' in empty


@needs_exiftool
def test_review_confirms_into_the_file_and_rejects_without_touching_it(
    review_client, review_library, suggesting_model, photos
):
    (good, (good_path, slug)), (bad, (bad_path, _)) = list(
        suggested_photos(review_library).items())[:2]
    untouched = bad_path.read_bytes()
    response = review_client.post("/api/review", json={"confirm": [good], "reject": [bad]})
    assert response.status_code == 200, response.json
    answer = response.json
    assert answer["ok"] and answer["message"] == "1 confirmed, 1 rejected"
    assert [(r["id"], r["action"], r["ok"]) for r in answer["results"]] == [
        (good, "confirm", True), (bad, "reject", True)]
    assert answer["results"][0]["photo"]["state"] == "confirmed"
    assert answer["results"][1]["photo"]["state"] == "removed"

    written = tags.read_tags(good_path)
    assert (written.slug, written.source, written.where) == (slug, "person", good_path)
    read = exiftool_json(good_path)
    with review_library.session() as session:
        name = review_library.landmark(session, slug).name
    assert read["XMP-phototagger:Source"] == "person"
    assert read["XMP-iptcCore:Location"] == name and name in str(read["XMP-dc:Subject"])
    confirmed = row(review_library, good)
    assert (confirmed.tag_state, confirmed.landmark_slug, confirmed.suggested_slug) == (
        "confirmed", slug, None)

    assert bad_path.read_bytes() == untouched and tags.read_tags(bad_path) is None
    assert not any(key.startswith("XMP-phototagger") for key in exiftool_json(bad_path))
    assert not list(photos.rglob("*.xmp"))
    rejected = row(review_library, bad)
    assert (rejected.tag_state, rejected.landmark_slug, rejected.suggested_slug) == (
        "removed", None, None)

    person = review_client.get("/api/photos", query_string={"state": "person"}).json
    assert sorted(p["id"] for p in person["photos"]) == sorted([good, bad])
    assert review_client.get("/api/photos", query_string={"state": "suggested"}).json[
        "count"] == 2
    # Later scans keep both decisions: the confirmed tag stays, the rejected photo stays off.
    Scanner(review_library, suggesting_model, ScanOptions(workers=0, force=True)).run([photos])
    assert row(review_library, good).tag_state == "confirmed"
    again = row(review_library, bad)
    assert (again.tag_state, again.suggested_slug) == ("removed", None)
    assert bad_path.read_bytes() == untouched


def test_review_in_bulk_confirms_each_photo_as_its_own_suggestion(review_client,
                                                                   review_library):
    suggested = suggested_photos(review_library)
    *confirm, reject = suggested
    response = review_client.post("/api/review", json={"confirm": confirm, "reject": [reject],
                                                       "write": "sidecar"})
    assert response.status_code == 200, response.json
    assert response.json["message"] == "3 confirmed, 1 rejected"
    assert [r["id"] for r in response.json["results"]] == [*confirm, reject]
    for pid in confirm:
        path, slug = suggested[pid]
        assert row(review_library, pid).landmark_slug == slug
        found = tags.read_tags(path)
        assert found.slug == slug and found.where.suffix == ".xmp"  # as asked: a sidecar
    assert row(review_library, reject).tag_state == "removed"
    html = review_client.get("/review").get_data(as_text=True)
    assert "No suggestions to review." in html and 'class="review-item"' not in html


def test_review_of_one_says_what_became_of_it(review_client, review_library):
    pid, (path, _) = next(iter(suggested_photos(review_library).items()))
    answer = review_client.post("/api/review", json={"reject": [pid]}).json
    assert answer["message"] == f"{path.name}: suggestion rejected (later scans leave this " \
        "photo untagged)"


def test_review_refuses_bad_input_and_changes_nothing(review_client, review_library, photos,
                                                      tmp_path):
    suggested = suggested_photos(review_library)
    first, second = list(suggested)[:2]
    before = {path: path.read_bytes() for path in photos.rglob("*.jpg")}
    outside = add_row(review_library, str(tmp_path / "outside" / "secret.jpg"))
    refused = [
        ({}, 400, "say which suggestions"),
        ({"confirm": [], "reject": []}, 400, "say which suggestions"),
        ({"confirm": str(first)}, 400, "confirm must be a list of photo ids"),
        ({"reject": [True]}, 400, "reject must be a list of photo ids"),
        ({"confirm": [1.5]}, 400, "list of photo ids"),
        ({"confirm": [2**70]}, 400, "list of photo ids"),
        ({"confirm": [-1]}, 400, "list of photo ids"),
        ({"confirm": [first], "reject": [second, first]}, 400, f"photo {first} is both"),
        ({"confirm": [first], "write": "everywhere"}, 400, "write must be one of"),
        ({"confirm": list(range(1, 502))}, 400, "at most 500"),
        ({"confirm": [first, 999]}, 404, "no photo 999 in the index"),
        ({"reject": [first, outside]}, 403, "outside the scanned folders"),
    ]
    for body, status, words in refused:
        response = review_client.post("/api/review", json=body)
        assert response.status_code == status, (body, response.json)
        error = response.json["error"]
        assert words in error and "\n" not in error, body
    assert review_client.post("/api/review", json=[first]).status_code == 415
    assert review_client.post("/api/review", data={"confirm": str(first)}).status_code == 415
    assert review_client.post("/api/review").status_code == 415
    for header in ({"Origin": "http://evil.example"}, {"Referer": "http://evil.example/x"}):
        response = review_client.post("/api/review", json={"confirm": [first]}, headers=header)
        assert response.status_code == 403 and "cross-site" in response.json["error"]
    assert suggested_photos(review_library) == suggested  # not one suggestion reviewed
    assert {path: path.read_bytes() for path in photos.rglob("*.jpg")} == before

    assert review_client.post("/api/review", json={"confirm": [first]}).status_code == 200
    for body in ({"confirm": [first]}, {"reject": [first]}):  # reviewed already
        response = review_client.post("/api/review", json=body)
        assert response.status_code == 409 and "no suggestion to review" in response.json["error"]
    assert row(review_library, first).tag_state == "confirmed"


def test_corrections_wait_for_a_scan_then_say_so(review_client, review_library, monkeypatch):
    monkeypatch.setattr(web_routes, "LOCK_WAIT", 0.05)
    pid = next(iter(suggested_photos(review_library)))
    with review_library.lock():
        for url, body in (("/api/review", {"confirm": [pid]}), ("/api/review", {"reject": [pid]}),
                          (f"/api/photos/{pid}/untag", {}),
                          (f"/api/photos/{pid}/tag", {"landmark": "Colosseum"})):
            response = review_client.post(url, json=body)
            assert response.status_code == 409, (url, response.json)
            assert "a scan is using the index" in response.json["error"]
    assert row(review_library, pid).suggested_slug is not None
    assert review_client.post("/api/review", json={"confirm": [pid]}).status_code == 200


def test_every_state_the_index_lists_has_a_name_on_the_library_page():
    from phototagger.index.store import STATES

    assert tuple(web_routes.STATE_NAMES) == STATES
