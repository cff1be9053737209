"""Where the index meets the files: write or remove a photo's tags and record that.

Shared by the scan and by a person's corrections, so both leave the index describing the file
as it now is (size, mtime and hash re-read after phototagger changed it).
"""

from __future__ import annotations

import os

from sqlalchemy import delete
from sqlalchemy.orm import Session

from phototagger import tags
from phototagger.index import models as orm
from phototagger.index import path_key
from phototagger.scan.changes import file_hash


def write_photo_tags(
    session: Session,
    photo: orm.Photo,
    request: tags.TagRequest,
    mode: str,
    preserve_mtime: bool = False,
) -> tags.WriteResult:
    """Write ``request`` into the photo's file (or sidecar); raises TagWriteError on refusal."""
    result = tags.write_tags(photo.fs_path, request, mode=mode, preserve_mtime=preserve_mtime)
    session.execute(delete(orm.Write).where(orm.Write.photo_id == photo.id))
    session.add(
        orm.Write(
            photo_id=photo.id,
            target=path_key(result.target)[0],
            mode=result.mode,
            slug=request.landmark.slug,
            gps_written=result.gps_written,
        )
    )
    photo.write_error = None
    restat(photo)
    return result


def remove_photo_tags(session: Session, photo: orm.Photo | None, path: str) -> tags.RemoveResult:
    """Remove what phototagger wrote into ``path`` and forget the recorded writes."""
    result = tags.remove_tags(path)
    if photo is not None:
        session.execute(delete(orm.Write).where(orm.Write.photo_id == photo.id))
        photo.write_error = None
        restat(photo)
    return result


def restat(photo: orm.Photo) -> None:
    """Remember the file as phototagger left it, so the next scan does not see a change."""
    try:
        info = os.stat(photo.fs_path)
        photo.size, photo.mtime_ns = info.st_size, info.st_mtime_ns
        photo.content_hash = file_hash(photo.fs_path)
    except OSError:
        pass  # gone meanwhile: the next scan records it as missing
