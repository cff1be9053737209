"""Where the index meets the files: write or remove a photo's tags and record that.

Shared by the scan and by a person's corrections, so both leave the index describing the file
as it now is (size, mtime and hash re-read after phototagger changed it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sqlalchemy import delete, insert, update
from sqlalchemy.orm import Session

from phototagger import tags
from phototagger.hashing import file_hash
from phototagger.index import path_key
from phototagger.index import tables as orm

#: Where tags go: into the file where that is lossless (else a sidecar), sidecars only, nowhere.
WRITE_MODES = ("embed", "sidecar", "none")


@dataclass(frozen=True)
class FileWrite:
    """A finished write and the file as it was left (what the index must remember)."""

    result: tags.WriteResult
    size: int | None
    mtime_ns: int | None
    content_hash: str | None


def write_file(
    path: str, request: tags.TagRequest, mode: str, preserve_mtime: bool = False
) -> FileWrite:
    """Write the tags into the file and stat it again; touches no database, so it can run on
    a writer thread while the model works. Raises TagWriteError on refusal."""
    result = tags.write_tags(path, request, mode=mode, preserve_mtime=preserve_mtime)
    if result.photo is not None:  # rewritten: its hash is known without reading it again
        photo = result.photo
        return FileWrite(result, photo.size, photo.mtime_ns, photo.content_hash)
    return FileWrite(result, *_file_state(path))


def record_writes(session: Session, writes: list[tuple[int, tags.TagRequest, FileWrite]]) -> None:
    """Remember finished writes, ``(photo id, request, write)``, in three statements.

    The scan records a round of writes at once: row by row through the ORM it cost about
    10 ms a photo on the thread the network runs on. The photos' rows are updated in the
    database only: a loaded Photo must be expired or refreshed to see the change.
    """
    if not writes:
        return
    ids = [photo_id for photo_id, _, _ in writes]
    session.execute(delete(orm.Write).where(orm.Write.photo_id.in_(ids)))
    session.execute(
        insert(orm.Write),
        [
            {
                "photo_id": photo_id,
                "target": path_key(written.result.target)[0],
                "mode": written.result.mode,
                "slug": request.landmark.slug,
                "gps_written": written.result.gps_written,
            }
            for photo_id, request, written in writes
        ],
    )
    session.execute(
        update(orm.Photo),
        [{"id": photo_id, **_file_as_left(written)} for photo_id, _, written in writes],
    )


def record_write(
    session: Session, photo: orm.Photo, request: tags.TagRequest, written: FileWrite
) -> None:
    """Remember what was written into the photo's file, and the file as phototagger left it."""
    record_writes(session, [(photo.id, request, written)])
    session.expire(photo, ["writes", *_file_as_left(written)])


def _file_as_left(written: FileWrite) -> dict:
    changes: dict = {"write_error": None}
    if written.size is not None:  # None: the file vanished; the next scan says missing
        changes |= {
            "size": written.size,
            "mtime_ns": written.mtime_ns,
            "content_hash": written.content_hash,
        }
    return changes


def write_photo_tags(
    session: Session, photo: orm.Photo, request: tags.TagRequest, mode: str
) -> tags.WriteResult:
    """Write ``request`` into the photo's file (or sidecar) and record it; TagWriteError on
    refusal."""
    written = write_file(photo.fs_path, request, mode)
    record_write(session, photo, request, written)
    return written.result


def remove_photo_tags(session: Session, photo: orm.Photo | None, path: str) -> tags.RemoveResult:
    """Remove what phototagger wrote into ``path`` and forget the recorded writes."""
    result = tags.remove_tags(path)
    if photo is not None:
        if photo.id is None:  # new to the index: its records are still pending
            photo.writes.clear()
        else:
            session.execute(delete(orm.Write).where(orm.Write.photo_id == photo.id))
        photo.write_error = None
        restat(photo)
    return result


def restat(photo: orm.Photo) -> None:
    """Remember the file as phototagger left it, so the next scan does not see a change."""
    size, mtime_ns, content_hash = _file_state(photo.fs_path)
    if size is not None:
        photo.size, photo.mtime_ns, photo.content_hash = size, mtime_ns, content_hash


def _file_state(path: str) -> tuple[int | None, int | None, str | None]:
    """Size, mtime and hash of the file; all None if it is gone (the next scan says missing)."""
    try:
        info = os.stat(path)
        return info.st_size, info.st_mtime_ns, file_hash(path)
    except OSError:
        return None, None, None
