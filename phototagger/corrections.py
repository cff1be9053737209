"""A person's corrections: confirm a landmark, or take phototagger's tags away.

Shared by the ``tag``/``untag`` commands and the app, so both behave the same. A confirmed
landmark is never replaced by a later scan; a removed one is never written again by a scan.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from phototagger import tags
from phototagger.errors import ConfigError, PhototaggerError
from phototagger.index import Library
from phototagger.index import models as orm
from phototagger.landmarks import Landmark, fold, match
from phototagger.scan.changes import file_hash
from phototagger.scan.pipeline import write_file_tags


@dataclass
class Outcome:
    path: str
    ok: bool
    message: str


def resolve_landmark(library: Library, session: Session, name: str) -> Landmark:
    """The one known landmark ``name`` designates, or a ConfigError that lists the choices."""
    known = library.all_landmarks(session)
    found = match(known, name)
    exact = [lm for lm in found if fold(name) in (fold(lm.name), fold(lm.slug))]
    if len(exact) == 1 or len(found) == 1:
        return (exact or found)[0]
    if not found:
        raise ConfigError(f"unknown landmark {name!r}: see `phototagger landmarks`")
    choices = ", ".join(lm.name for lm in found[:8])
    raise ConfigError(f"{name!r} matches several landmarks ({choices}): be more precise")


def confirm_landmark(
    library: Library, paths: Iterable[str], name: str, write: str = "embed"
) -> list[Outcome]:
    """Record ``name`` as the confirmed landmark of each file and write it into the file."""
    outcomes = []
    with library.session() as session:
        landmark = resolve_landmark(library, session, name)
        for path in paths:
            path = os.path.abspath(path)
            if not os.path.isfile(path):
                outcomes.append(Outcome(path, False, "no such file"))
                continue
            photo = library.photo_for_update(session, path)
            if photo.id is None:  # never scanned: remember the file so a scan knows it
                info = os.stat(path)
                photo.size, photo.mtime_ns = info.st_size, info.st_mtime_ns
                photo.content_hash, photo.status = file_hash(path), "ok"
            photo.landmark_slug, photo.confidence = landmark.slug, None
            photo.tag_state, photo.model_pk = "confirmed", None
            session.flush()
            message = f"confirmed as {landmark.name}"
            if write != "none":
                request = tags.TagRequest(
                    landmark=landmark,
                    confidence=None,
                    source="person",
                    model=None,
                    top_k=[],
                    tagged_at=datetime.now(UTC),
                )
                try:
                    result = write_file_tags(session, photo, request, write, False)
                except PhototaggerError as error:
                    session.rollback()
                    outcomes.append(Outcome(path, False, f"not tagged: {error}"))
                    continue
                message += f" (written to {result.target})"
            session.commit()
            outcomes.append(Outcome(path, True, message))
    return outcomes


def remove_landmark(library: Library, paths: Iterable[str] | None) -> list[Outcome]:
    """Remove what phototagger wrote from each file (``None``: every tagged photo)."""
    outcomes = []
    with library.session() as session:
        if paths is None:
            query = select(orm.Photo).where(
                orm.Photo.landmark_slug.is_not(None) | orm.Photo.writes.any()
            )
            photos = [(photo.fs_path, photo) for photo in session.scalars(query)]
        else:
            photos = []
            for path in paths:
                path = os.path.abspath(path)
                photos.append((path, library.photo_at(session, path)))
        for path, photo in photos:
            outcomes.append(_remove_one(session, path, photo))
    return outcomes


def _remove_one(session: Session, path: str, photo: orm.Photo | None) -> Outcome:
    removed = False
    if os.path.exists(path):
        try:
            removed = tags.remove_tags(path).removed
        except PhototaggerError as error:
            return Outcome(path, False, f"not untagged: {error}")
    elif photo is None:
        return Outcome(path, False, "no such file")
    if photo is not None:
        photo.landmark_slug = photo.confidence = photo.model_pk = None
        photo.tag_state = "removed"
        session.execute(delete(orm.Write).where(orm.Write.photo_id == photo.id))
        if os.path.exists(path):
            info = os.stat(path)
            photo.size, photo.mtime_ns = info.st_size, info.st_mtime_ns
            photo.content_hash = file_hash(path)
        session.commit()
    return Outcome(path, True, "tags removed" if removed else "nothing of phototagger's to remove")
