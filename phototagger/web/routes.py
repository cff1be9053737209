"""Pages and the JSON API they use: thin wrappers around predict, the index and corrections."""

from __future__ import annotations

import os
import threading
from collections import defaultdict

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    render_template,
    request,
    url_for,
)
from sqlalchemy.orm import Session

from phototagger.corrections import Outcome, confirm_landmark, remove_landmark
from phototagger.errors import ConfigError, ImageError, IndexLockedError, cut
from phototagger.filetags import WRITE_MODES
from phototagger.imaging import decode_sizes
from phototagger.index import Library
from phototagger.index import tables as orm
from phototagger.index.store import STATES, is_inside, recorded_explanation
from phototagger.landmarks import Landmark
from phototagger.model import LandmarkModel
from phototagger.predict import predict_decoded
from phototagger.vocabulary import Vocabulary
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
                                                "under"))
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
    except ConfigError as error:
        abort(400, str(error))


def _outcome_response(photo_id: int, outcome: Outcome):
    with _library().session() as session:
        photo = photo_dict(session.get(orm.Photo, photo_id))
    status = 200 if outcome.ok else 422
    return jsonify(ok=outcome.ok, message=outcome.message, photo=photo), status


@blueprint.post("/api/photos/<int:photo_id>/tag")
def api_tag(photo_id: int):
    """Confirm a landmark for an indexed photo, and write it into the file unless told not to."""
    body = _json_body()
    name, write = body.get("landmark"), body.get("write", _settings()["write"])
    if not isinstance(name, str) or not name.strip():
        abort(400, 'say which landmark: {"landmark": "Eiffel Tower"}')
    if write not in WRITE_MODES:
        abort(400, f"write must be one of {', '.join(WRITE_MODES)}")
    with _library().session() as session:
        path = _served_photo(session, photo_id)[0].fs_path
    [outcome] = _correcting(confirm_landmark, _library(), [path], name.strip(), write,
                            estimate_position=_settings()["estimate_position"],
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


# -- about -------------------------------------------------------------------------------


@blueprint.get("/about")
def about_page():
    return render_template("about.html", facts=model_facts(_model()))
