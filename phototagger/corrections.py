"""A person's corrections: confirm a landmark, or take phototagger's tags away.

Shared by the ``tag``/``untag`` commands and the app, so both behave the same. A confirmed
landmark is never replaced by a later scan; a removed one is never written again by a scan.
Corrections take the index lock, so a scan running at the same time cannot undo them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from phototagger import tags
from phototagger.errors import ConfigError, ImageError, PhototaggerError, cut
from phototagger.filetags import remove_photo_tags, restat, write_photo_tags
from phototagger.imaging import file_format
from phototagger.index import Library
from phototagger.index import tables as orm
from phototagger.landmarks import Landmark, fold, match, new_landmark


class UnknownLandmarkError(ConfigError):
    """A name that designates no landmark the index knows (``name``: as given)."""

    def __init__(self, message: str, name: str):
        super().__init__(message)
        self.name = name


@dataclass
class Outcome:
    path: str
    ok: bool
    message: str


#: Far longer than any landmark's name or alias: a longer name is not even looked for.
LONGEST_NAME = 200


def resolve_landmark(library: Library, session: Session, name: str) -> Landmark:
    """The one known landmark ``name`` designates, or a ConfigError that lists the choices."""
    known = library.all_landmarks(session)
    found = match(known, name) if len(name) <= LONGEST_NAME else []
    exact = [lm for lm in found if fold(name) in (fold(lm.name), fold(lm.slug))]
    if len(exact) == 1 or len(found) == 1:
        return (exact or found)[0]
    if not found:
        raise UnknownLandmarkError(
            f"unknown landmark {cut(name)!r}: see `phototagger landmarks`, or give its place "
            "(--city, --country, --lat, --lon) to name a new one", name)
    choices = ", ".join(lm.name for lm in found[:8])
    raise ConfigError(f"{cut(name)!r} matches several landmarks ({choices}): be more precise")


def confirm_landmark(
    library: Library,
    paths: Iterable[str],
    name: str,
    write: str = "embed",
    *,
    landmarks: Iterable[Landmark] = (),
    wait: float = 10,
    estimate_position: bool = True,
    place: dict | None = None,
    network: str | None = None,
) -> list[Outcome]:
    """Record ``name`` as the confirmed landmark of each file and write it into the file.

    ``landmarks`` (a model's classes) are added to those the index knows, so a person can tag
    before any scan has run. ``estimate_position``: also write the landmark's position as the
    photo's estimated GPS position. ``place`` (city, region, country, country_code, latitude,
    longitude): a name the index does not know is a new landmark at that place, learned
    (phototagger.vocabulary) from the embeddings by ``network`` of the photos a person tags
    with it, once there are enough of them.
    """
    from phototagger.vocabulary import add_to_gallery

    outcomes = []
    with library.lock(wait), library.session() as session:
        library.ensure_landmarks(session, landmarks)
        try:
            landmark = resolve_landmark(library, session, name)
        except UnknownLandmarkError:
            if place is None:
                raise
            landmark = new_landmark(name, **place)
            session.add(orm.Landmark(**landmark.to_dict(), learned=True))
            session.flush()
        for path in paths:
            indexed = library.indexed_path(session, path)
            outcome = _confirm_one(library, session, indexed, landmark, write, estimate_position)
            if outcome.ok and network is not None:
                add_to_gallery(library, session, landmark.slug, network, indexed)
            outcomes.append(outcome)
    return outcomes


def _confirm_one(
    library: Library,
    session: Session,
    path: str,
    landmark: Landmark,
    write: str,
    estimate_position: bool,
) -> Outcome:
    if not os.path.isfile(path):
        return Outcome(path, False, "no such file")
    try:
        file_format(path)
    except ImageError as error:
        return Outcome(path, False, f"not tagged: {error}")
    photo = library.photo_for_update(session, path)
    if photo.id is None:  # never scanned: remember the file so that a scan knows it
        photo.status = "ok"
        restat(photo)
    photo.landmark_slug, photo.confidence = landmark.slug, None
    photo.tag_state, photo.model_pk = "confirmed", None
    photo.suggested_slug = None  # confirmed, or replaced by the person's own landmark
    session.flush()
    message = f"confirmed as {landmark.name}"
    if write != "none":
        request = tags.TagRequest.persons(landmark, estimate_position)
        try:
            result = write_photo_tags(session, photo, request, write)
        except PhototaggerError as error:
            session.rollback()
            return Outcome(path, False, f"not tagged: {error}")
        message += f" (written to {result.target})"
    session.commit()
    return Outcome(path, True, message)


def remove_landmark(
    library: Library, paths: Iterable[str] | None, *, wait: float = 10, retag: bool = False
) -> list[Outcome]:
    """Remove what phototagger wrote from each file (``None``: every photo it tagged).

    The photos are then kept from later scans' tags, unless ``retag``: then the next scan
    tags them again as it would any photo (how tags move between files and sidecars), and
    writes a person's confirmed landmark again rather than the model's. A person's removal
    is a decision like a person's tag: ``retag`` lifts it only for files named one by one,
    never for every photo at once.
    """
    outcomes = []
    with library.lock(wait), library.session() as session:
        if paths is None:
            tagged = orm.Photo.landmark_slug.is_not(None) | orm.Photo.writes.any()
            if retag:  # a person's removal stays, whatever the recipe
                tagged &= orm.Photo.tag_state.is_(None) | (orm.Photo.tag_state != "removed")
            query = select(orm.Photo).where(tagged)
            photos = [(photo.fs_path, photo) for photo in session.scalars(query).unique()]
        else:
            photos = []
            for path in paths:
                path = library.indexed_path(session, path)
                photos.append((path, library.photo_at(session, path)))
        for path, photo in photos:
            outcomes.append(_remove_one(session, path, photo, retag))
    return outcomes


def _remove_one(session: Session, path: str, photo: orm.Photo | None, retag: bool) -> Outcome:
    if not os.path.exists(path) and photo is None:
        return Outcome(path, False, "no such file")
    persons = photo is not None and photo.tag_state == "confirmed"
    if retag and persons and photo.landmark_slug is None:
        # Taken out, it could not be written again: this index does not know that landmark.
        return Outcome(path, False, "left as it is: a person's tag of a landmark this index "
                       "does not know")
    removed, left = False, []
    if os.path.exists(path):
        try:
            result = remove_photo_tags(session, photo, path)
        except PhototaggerError as error:
            session.rollback()
            return Outcome(path, False, f"not untagged: {error}")
        removed, left = result.removed, result.left
    kept = retag and persons
    suggested = photo is not None and photo.landmark_slug is None and photo.suggested_slug
    if photo is not None and not kept:
        if photo.landmark_slug is not None:
            from phototagger.vocabulary import remove_from_gallery

            remove_from_gallery(session, photo.landmark_slug, photo.path)
        photo.landmark_slug = photo.confidence = photo.model_pk = None
        photo.suggested_slug = None  # a rejected suggestion is a removal too
        photo.tag_state = None if retag else "removed"
    session.commit()
    if left:
        return Outcome(path, False, "tags removed, but " + "; ".join(left))
    message = "tags removed" if removed else "nothing of phototagger's to remove"
    if kept:
        message += " (a person's landmark: the next scan writes it again)"
    elif photo is None:
        message += " (not in the index: a scan may still tag it)"
    elif not retag:  # what it did even where the file had nothing: a person's decision
        rejected = "its suggestion rejected, " if suggested else ""
        message += f"; {rejected}recorded as removed by a person: scans leave it untagged"
    return Outcome(path, True, message)
