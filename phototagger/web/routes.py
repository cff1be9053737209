"""Pages and the JSON API they use: thin wrappers around predict, the index and corrections."""

from __future__ import annotations

import os
import re
import threading
from collections import defaultdict

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    make_response,
    render_template,
    request,
    url_for,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from phototagger import search
from phototagger.corrections import (
    LONGEST_NAME,
    Outcome,
    UnknownLandmarkError,
    confirm_landmark,
    remove_landmark,
)
from phototagger.errors import ConfigError, ImageError, IndexLockedError, cut
from phototagger.filetags import WRITE_MODES
from phototagger.imaging import decode_sizes
from phototagger.index import Library
from phototagger.index import tables as orm
from phototagger.index.store import STATES, is_inside, recorded_explanation
from phototagger.landmarks import Landmark
from phototagger.model import LandmarkModel
from phototagger.places import MIN_PHOTOS, find_places
from phototagger.predict import predict_decoded
from phototagger.vocabulary import Vocabulary, learn_place
from phototagger.web import content_security_policy
from phototagger.web.about import model_facts
from phototagger.web.images import (
    PREVIEW_SIZE,
    THUMBNAIL_SIZE,
    DecodeSlots,
    data_url,
    fitted_jpeg,
    map_url,
    upright_jpeg_of_file,
)
from phototagger.web.mapping import estimate_pins, landmark_pins, parse_box
from phototagger.web.places import learned_summary, place_view
from phototagger.web.review import review_suggestions, review_summary, said

blueprint = Blueprint("web", __name__)
SEARCH_LIMIT = 500
#: Seconds a correction waits for a scan that holds the index lock before it gives up.
LOCK_WAIT = 10.0
#: What the library page can list (Library.find's states): the menu's words, and the words
#: for "no such photo".
STATE_NAMES = {
    "tagged": ("Tagged", "tagged photo"),
    "suggested": ("Suggested (not in the files)", "suggested photo"),
    "none": ("No landmark", "photo without a landmark"),
    "person": ("Your decisions", "photo you tagged or untagged"),
    "all": ("Everything", "photo"),
}
#: One inference at a time: the model already uses every core, threads would only fight.
_inference = threading.Lock()


def _model() -> LandmarkModel:
    return current_app.extensions["phototagger"]["model"]


def _library() -> Library:
    return current_app.extensions["phototagger"]["library"]


def _vocabulary() -> Vocabulary:
    """The landmarks the app's index learned, as they are now (``learn`` may have run)."""
    library = _library()
    with library.session() as session:
        return Vocabulary.of(library, session, _model())


def _settings() -> dict:
    return current_app.extensions["phototagger"]


def _decoding() -> DecodeSlots:
    return current_app.extensions["phototagger"]["decoding"]


@blueprint.app_template_global()
def osm(latitude: float | None, longitude: float | None) -> str | None:
    return map_url(latitude, longitude)


# -- predict an upload -------------------------------------------------------------------


@blueprint.get("/")
def predict_page():
    return render_template("predict.html", model=_model(), limit=request.max_content_length)


@blueprint.post("/api/predict")
def api_predict():
    """Predict an uploaded photo held in memory only; answer with an upright preview."""
    upload = request.files.get("photo")
    if upload is None or not upload.filename:
        abort(400, "choose a photo to upload (form field 'photo')")
    top_k = request.form.get("top_k", "5").strip()
    if not (top_k.isdecimal() and 1 <= int(top_k) <= 50):
        abort(400, "top_k must be a whole number from 1 to 50")
    name, data = cut(upload.filename), upload.read()
    model = _model()
    try:
        with _decoding().held():  # decoded once, small: the model's view and the preview
            (view, shown), facts = decode_sizes(
                data,
                (model.preprocess.resize, PREVIEW_SIZE),
                max_pixels=current_app.extensions["phototagger"]["upload_pixels"],
            )
    except ImageError as error:
        abort(422, f"{name}: {error}")
    preview = fitted_jpeg(shown, PREVIEW_SIZE)
    with _inference:
        result = predict_decoded(model, view, facts, data, name, int(top_k), _vocabulary())
    payload = result.to_dict()
    for entry in payload["landmarks"]:
        entry["map_url"] = map_url(entry["latitude"], entry["longitude"])
    payload["preview"] = data_url(preview)
    return jsonify(payload)


# -- the library -------------------------------------------------------------------------


def _search_filters() -> dict:
    filters = {
        key: request.args.get(key, "").strip() or None for key in ("landmark", "country", "city")
    }
    try:
        minimum = request.args.get("min_confidence", "").strip()
        filters["min_confidence"] = float(minimum) if minimum else None
        limit = int(request.args.get("limit", SEARCH_LIMIT))
    except ValueError:
        abort(400, "min_confidence and limit must be numbers")
    filters["limit"] = max(1, min(limit, SEARCH_LIMIT))
    filters["under"] = request.args.get("under", "").strip() or None  # as query --under
    if filters["under"] is not None and ("\x00" in filters["under"]
                                         or not os.path.isabs(filters["under"])):
        abort(400, "under must be an absolute folder path")
    box = request.args.get("estimated", "").strip()  # the Map page's pins of estimates
    filters["estimated_in"] = parse_box(box) if box else None
    if box and filters["estimated_in"] is None:
        abort(400, "estimated must be a box of degrees: south,west,north,east")
    filters["state"] = request.args.get("state", "").strip() or "tagged"
    if filters["state"] not in STATES:
        abort(400, f"state must be one of {', '.join(STATES)}")
    return filters


def _landmark_dict(landmark: orm.Landmark | None) -> dict | None:
    if landmark is None:
        return None
    return {
        "slug": landmark.slug,
        "name": landmark.name,
        "city": landmark.city,
        "country": landmark.country,
        "latitude": landmark.latitude,
        "longitude": landmark.longitude,
        "map_url": map_url(landmark.latitude, landmark.longitude),
    }


def photo_dict(photo: orm.Photo) -> dict:
    """A photo as the API and the pages show it: the index's view, with links to its images.

    ``state``: auto or confirmed (tagged, by the model or a person), removed (by a person),
    suggested (``suggestion`` is a landmark for a person to confirm, not written into the
    file), or None (no landmark). ``decision``: the reason code of the last scan's decision.
    """
    return {
        "id": photo.id,
        "path": photo.path,
        "name": os.path.basename(photo.path),
        "landmark": _landmark_dict(photo.landmark),
        "suggestion": _landmark_dict(photo.suggestion),
        "confidence": photo.confidence,
        "state": photo.tag_state or ("suggested" if photo.suggested_slug else None),
        "decision": photo.decision,
        "url": url_for("web.photo_page", photo_id=photo.id),
        "thumbnail": url_for("web.thumbnail", photo_id=photo.id),
    }


@blueprint.get("/library")
def library_page():
    filters = _search_filters()
    library = _library()
    with library.session() as session:
        searched = any(filters[key] for key in ("landmark", "country", "city", "min_confidence",
                                                "under", "estimated_in"))
        photos = [photo_dict(p) for p in _servable(session, library.find(session, **filters))]
        counts = library.landmark_counts(session)
        landmarks = [lm for lm in library.all_landmarks(session) if counts.get(lm.slug)]
    return render_template(
        "library.html",
        photos=photos,
        filters=filters,
        searched=searched,
        landmarks=landmarks,
        counts=counts,
        limit=filters["limit"],
        states=STATE_NAMES,
    )


@blueprint.get("/api/photos")
def api_photos():
    filters = _search_filters()
    library = _library()
    with library.session() as session:
        found = library.find(session, **filters)
        photos = [photo_dict(p) for p in _servable(session, found)]
    return jsonify(photos=photos, count=len(photos), truncated=len(found) == filters["limit"])


def _servable(session: Session, photos: list[orm.Photo]) -> list[orm.Photo]:
    """The ``photos`` whose real paths lie in a scanned folder: those _served_photo serves.

    An index from before scans kept to their folders holds photos reached through a link to
    elsewhere; listed, they would show as images the app refuses.
    """
    folders = _library().root_folders(session)
    return [photo for photo in photos if is_inside(os.path.realpath(photo.fs_path), folders)]


def _served_photo(session: Session, photo_id: int) -> tuple[orm.Photo, str]:
    """The indexed photo and its real path, refused unless it truly lies in a scanned folder.

    The client names photos by id only; the path comes from the index and is resolved here,
    so ``..`` in a stored path or a symbolic link that leads out of the roots is refused.
    """
    # An id past what the database holds (64 bits) is no photo, not an overflow.
    photo = session.get(orm.Photo, photo_id) if 0 < photo_id < 2**63 else None
    if photo is None:
        abort(404, f"no photo {cut(str(photo_id))} in the index")
    real = os.path.realpath(photo.fs_path)
    if not _library().is_inside_roots(session, real):
        abort(403, "this photo lies outside the scanned folders, so it is not shown")
    if not os.path.isfile(real):
        abort(404, "this photo's file is missing: rescan its folder")
    return photo, real


def _image_response(photo_id: int, size: int) -> Response:
    with _library().session() as session:
        photo, real = _served_photo(session, photo_id)
        version = f"{photo.id}-{photo.content_hash or photo.mtime_ns}-{size}"
    try:
        jpeg = upright_jpeg_of_file(real, size, _decoding())
    except ImageError as error:
        abort(422, f"cannot show this photo: {error}")
    response = Response(jpeg, mimetype="image/jpeg")
    response.set_etag(version)
    response.cache_control.private = True
    response.cache_control.max_age = 3600
    return response.make_conditional(request)


@blueprint.get("/photos/<int:photo_id>/thumbnail.jpg")
def thumbnail(photo_id: int) -> Response:
    return _image_response(photo_id, THUMBNAIL_SIZE)


@blueprint.get("/photos/<int:photo_id>/preview.jpg")
def preview(photo_id: int) -> Response:
    return _image_response(photo_id, PREVIEW_SIZE)


@blueprint.get("/photos/<int:photo_id>")
def photo_page(photo_id: int):
    library = _library()
    with library.session() as session:
        photo, _ = _served_photo(session, photo_id)
        landmarks = {lm.slug: lm for lm in library.all_landmarks(session)}
        guesses = defaultdict(list)
        for p in photo.predictions:
            landmark = landmarks.get(p.slug) or Landmark(p.slug, p.slug)
            guesses[p.model.model_id].append((landmark, p.probability, p.similarity, p.ordinary))
        writes = [(w.mode, w.target, w.written) for w in photo.writes]
        shown = photo_dict(photo)
        why = recorded_explanation(photo, landmarks)
        camera = (photo.camera_latitude, photo.camera_longitude)
        taken_at = photo.taken_at
    return render_template(
        "photo.html",
        photo=shown,
        why=why,
        guesses=dict(guesses),
        writes=writes,
        camera=camera,
        taken_at=taken_at,
        landmarks=sorted(landmarks.values(), key=lambda lm: lm.name),
        write=_settings()["write"],
    )


#: Similar photos a page shows unless asked for more (``limit``, up to SEARCH_LIMIT).
SIMILAR_LIMIT = 24


def _whole_number(name: str, default: int, lowest: int, highest: int) -> int:
    """A query parameter that is a whole number in a range; a 400 that says so otherwise."""
    text = request.args.get(name, "").strip()
    if not text:
        return default
    if not (text.isdecimal() and lowest <= int(text) <= highest):
        abort(400, f"{name} must be a whole number from {lowest} to {highest}")
    return int(text)


@blueprint.get("/photos/<int:photo_id>/similar")
def similar_page(photo_id: int):
    """The library's photos most alike this one, best first: ``phototagger similar``, from
    the embeddings the scan stored (nothing decoded)."""
    limit = _whole_number("limit", SIMILAR_LIMIT, 1, SEARCH_LIMIT)
    network = _model().network_id
    library = _library()
    with library.session() as session:
        photo, _ = _served_photo(session, photo_id)
        query = None if network is None else search.embedding_of(session, photo, network)
        found = [] if query is None else search.similar(session, network, query, limit,
                                                        exclude=photo.id)
        shown = {p.id for p in _servable(session, [p for p, _ in found])}
        similar = [{**photo_dict(p), "similarity": similarity}
                   for p, similarity in found if p.id in shown]
        photo = photo_dict(photo)
    return render_template("similar.html", photo=photo, similar=similar, limit=limit,
                           most=SEARCH_LIMIT, embedded=query is not None)


# -- corrections: the same code as `phototagger tag` / `untag` ----------------------------


def _json_body() -> dict:
    """The request's JSON object; insisting on JSON also keeps plain cross-site forms out."""
    try:
        body = request.get_json(silent=True) if request.is_json else None
    except RecursionError:  # [[[[... a hundred thousand deep: no correction looks like that
        abort(400, "the JSON is nested too deeply: send a flat object")
    if not isinstance(body, dict):
        abort(415, "send a JSON object with Content-Type: application/json")
    return body


def _correcting(correction, *args, **kwargs) -> list[Outcome]:
    """Run a correction under the index lock; a scan holding it, or a bad name, is a 4xx."""
    try:
        return correction(*args, wait=LOCK_WAIT, **kwargs)
    except IndexLockedError:
        abort(409, "a scan is using the index right now: try again when it is done")
    except UnknownLandmarkError as error:  # the page then asks for the new landmark's place
        abort(make_response(jsonify(
            error=f"unknown landmark {cut(error.name)!r}: see `phototagger landmarks`, or give "
            "its place (city, country, latitude, longitude) to name a new one",
            unknown_landmark=True), 400))
    except ConfigError as error:
        abort(400, str(error))


def _outcome_response(photo_id: int, outcome: Outcome):
    with _library().session() as session:
        photo = photo_dict(session.get(orm.Photo, photo_id))
    status = 200 if outcome.ok else 422
    return jsonify(ok=outcome.ok, message=outcome.message, photo=photo), status


#: The fields of a place a person names (as ``tag`` and ``learn`` take --city, --country,
#: --lat, --lon): the JSON key, and the landmark field it fills.
PLACE_FIELDS = {"city": "city", "country": "country", "latitude": "latitude",
                "longitude": "longitude"}


def _place_fields(body: dict) -> dict | None:
    """The place a request gives a landmark (None: none given): text as typed, coordinates
    as numbers or text (phototagger.landmarks.new_landmark checks them, as for the CLI)."""
    place = {}
    for key, field in PLACE_FIELDS.items():
        value = body.get(key)
        if isinstance(value, str):
            value = value.strip() or None
        elif value is not None and (isinstance(value, bool)
                                    or not isinstance(value, int | float)):
            abort(400, f"{key} must be text or a number")
        if isinstance(value, str) and len(value) > LONGEST_NAME:
            abort(400, f"{key} is too long: at most {LONGEST_NAME} characters")
        place[field] = value
    return place if any(value is not None for value in place.values()) else None


def _landmark_name(body: dict, key: str, example: str) -> str:
    """The landmark name a request gives in ``key``, stripped; a 400 without one."""
    name = body.get(key)
    if not isinstance(name, str) or not name.strip():
        abort(400, f'say which landmark: {{"{key}": "{example}"}}')
    return name.strip()


@blueprint.post("/api/photos/<int:photo_id>/tag")
def api_tag(photo_id: int):
    """Confirm a landmark for an indexed photo, and write it into the file unless told not to.

    A name the index does not know, sent with its place (``city``, ``country``,
    ``latitude``, ``longitude``), is a new landmark, as for ``tag --landmark NEW --city ...``;
    without one, the answer says ``unknown_landmark`` so that the page asks for it."""
    body = _json_body()
    name = _landmark_name(body, "landmark", "Eiffel Tower")
    write = body.get("write", _settings()["write"])
    if write not in WRITE_MODES:
        abort(400, f"write must be one of {', '.join(WRITE_MODES)}")
    place = _place_fields(body)
    if place is not None and len(name) > LONGEST_NAME:
        abort(400, f"a new landmark's name is at most {LONGEST_NAME} characters")
    with _library().session() as session:
        path = _served_photo(session, photo_id)[0].fs_path
    [outcome] = _correcting(confirm_landmark, _library(), [path], name, write,
                            estimate_position=_settings()["estimate_position"], place=place,
                            network=_model().network_id)  # as `tag`: a learned one learns it
    return _outcome_response(photo_id, outcome)


@blueprint.post("/api/photos/<int:photo_id>/untag")
def api_untag(photo_id: int):
    """Take phototagger's landmark off an indexed photo; later scans leave it off."""
    _json_body()
    with _library().session() as session:
        path = _served_photo(session, photo_id)[0].fs_path
    [outcome] = _correcting(remove_landmark, _library(), [path])
    return _outcome_response(photo_id, outcome)


# -- review: a person confirms or rejects the suggestions --------------------------------


@blueprint.get("/review")
def review_page():
    library = _library()
    with library.session() as session:
        landmarks = {lm.slug: lm for lm in library.all_landmarks(session)}
        photos = [
            {**photo_dict(photo), "why": recorded_explanation(photo, landmarks)}
            for photo in _servable(
                session, library.find(session, state="suggested", limit=SEARCH_LIMIT))
        ]
    return render_template("review.html", photos=photos, limit=SEARCH_LIMIT,
                           write=_settings()["write"])


def _photo_ids(body: dict, key: str) -> list[int]:
    """``body[key]``: a list of photo ids (none: empty), each once, in the order given."""
    ids = body.get(key, [])
    if not isinstance(ids, list) or not all(
        type(pid) is int and 0 < pid < 2**63 for pid in ids
    ):
        abort(400, f'{key} must be a list of photo ids: {{"{key}": [1, 2]}}')
    return list(dict.fromkeys(ids))


def _review_request() -> tuple[list[int], list[int], str]:
    """The photos to confirm and to reject, and how to write, from the request's JSON."""
    body = _json_body()
    confirm, reject = _photo_ids(body, "confirm"), _photo_ids(body, "reject")
    write = body.get("write", _settings()["write"])
    if not confirm and not reject:
        abort(400, 'say which suggestions: {"confirm": [photo ids], "reject": [photo ids]}')
    if len(confirm) + len(reject) > SEARCH_LIMIT:
        abort(400, f"review at most {SEARCH_LIMIT} photos at once")
    both = sorted(set(confirm) & set(reject))
    if both:
        abort(400, f"photo {both[0]} is both to confirm and to reject: choose one")
    if write not in WRITE_MODES:
        abort(400, f"write must be one of {', '.join(WRITE_MODES)}")
    return confirm, reject, write


@blueprint.post("/api/review")
def api_review():
    """Confirm suggestions (the same as ``tag``) and reject others (the same as ``untag``):
    ``{"confirm": [photo ids], "reject": [photo ids], "write": "embed"}``."""
    confirm, reject, write = _review_request()
    suggested = {}
    with _library().session() as session:
        for pid in confirm + reject:  # every photo checked before anything changes
            photo = _served_photo(session, pid)[0]
            if photo.suggestion is None:
                abort(409, f"photo {pid} has no suggestion to review (confirmed or rejected "
                      "already?): reload the page")
            suggested[pid] = (photo.fs_path, photo.suggestion.slug)
    reviewed = _correcting(review_suggestions, _library(), suggested, confirm, reject, write,
                           estimate_position=_settings()["estimate_position"],
                           network=_model().network_id)
    with _library().session() as session:
        results = [
            {"id": r.photo_id, "action": r.action, "ok": r.outcome.ok, "message": said(r),
             "photo": photo_dict(session.get(orm.Photo, r.photo_id))}
            for r in reviewed
        ]
    ok = all(r.outcome.ok for r in reviewed)
    return jsonify(ok=ok, message=review_summary(reviewed), results=results), 200 if ok else 422


# -- places: groups of untagged photos, for a person to name -----------------------------

#: Thumbnails a place's strip shows; its photos are most typical first.
PLACE_STRIP = 12
#: What a place id looks like (phototagger.places: min_photos, a hash of its photos).
PLACE_ID = re.compile(r"\d{1,4}-[0-9a-f]{8}")


@blueprint.get("/places")
def places_page():
    """The places ``phototagger places`` finds, largest first, each with a form to name it;
    computed afresh on each visit, as the command does (``min_photos`` as --min-photos)."""
    min_photos = _whole_number("min_photos", MIN_PHOTOS, 2, 1000)
    network = _model().network_id
    library = _library()
    shown = []
    with library.session() as session:
        for place in find_places(session, network, min_photos) if network else []:
            first = place.photo_ids[:PLACE_STRIP]
            rows = {p.id: p for p in session.scalars(
                select(orm.Photo).where(orm.Photo.id.in_(first)))}
            strip = _servable(session, [rows[i] for i in first if i in rows])
            shown.append({**place_view(place), "photos": [photo_dict(p) for p in strip]})
    return render_template("places.html", places=shown, min_photos=min_photos,
                           default_min_photos=MIN_PHOTOS, can_learn=network is not None)


@blueprint.post("/api/places/<place_id>/learn")
def api_learn_place(place_id: str):
    """Name a place: learn a landmark from its photos, as ``learn NAME --from-place ID``
    (``{"name": ..., "city": ..., "country": ..., "latitude": ..., "longitude": ...}``;
    without coordinates it stands at the place's GPS median when that is tight)."""
    body = _json_body()
    name = _landmark_name(body, "name", "Red Fort")
    if len(name) > LONGEST_NAME:
        abort(400, f"a landmark's name is at most {LONGEST_NAME} characters")
    if not PLACE_ID.fullmatch(place_id):
        abort(404, f"not a place id: {cut(place_id)!r} (the Places page lists them)")
    with _inference:  # re-deciding the library runs the learned landmarks' similarities
        result = _correcting(learn_place, _library(), _model(), name, place_id,
                             _place_fields(body))
    landmark = result.landmark
    tagged, suggested = result.redecided.matching.get(landmark.slug, (0, 0))
    return jsonify(ok=True, message=learned_summary(result), landmark=_landmark_dict(landmark),
                   photos=result.photos, added=result.added, agreement=result.agreement,
                   outliers=[{"path": path, "similarity": similarity}
                             for path, similarity in result.outliers],
                   tagged=tagged, suggested=suggested,
                   url=url_for("web.library_page", landmark=landmark.name))


# -- the map -----------------------------------------------------------------------------

#: Online map tiles, used only where the browser reaches them; the page draws its own
#: world outline first, from the vendored world-atlas file.
TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
TILES_ORIGIN = "https://tile.openstreetmap.org"


def _pin_dict(pin) -> dict:
    return {"kind": pin.kind, "name": pin.name, "latitude": pin.latitude,
            "longitude": pin.longitude, "count": pin.count,
            "url": url_for("web.library_page", **pin.filters)}


@blueprint.get("/map")
def map_page():
    """The library's photos on a map: at their landmarks, and at the positions estimated
    from the library's own GPS, a pin per place, each leading to its photos."""
    library = _library()
    with library.session() as session:
        landmarks, unplaced = landmark_pins(library, session)
        estimates = estimate_pins(session)
    response = make_response(render_template(
        "map.html", landmarks=[_pin_dict(p) for p in landmarks],
        estimates=[_pin_dict(p) for p in estimates],
        unplaced=[(lm.name, count, url_for("web.library_page", landmark=lm.name))
                  for lm, count in unplaced],
        tiles=TILES))
    response.headers["Content-Security-Policy"] = content_security_policy([TILES_ORIGIN])
    return response


# -- about -------------------------------------------------------------------------------


@blueprint.get("/about")
def about_page():
    return render_template("about.html", facts=model_facts(_model()))
