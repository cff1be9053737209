"""Positions for photos without camera GPS, from the library's own photos that have it.

Phones record GPS; older cameras and scanned or scrubbed photos don't. A GPS-less photo that
looks very like photos of the same library with camera GPS close together (and taken near in
time, where both have a capture time) was probably taken there: their median is its estimated
position, by :func:`phototagger.decision.place_from_library`. It is kept in the index as a
suggestion (``photos.estimated_*``), shown by ``info``, never taken for camera GPS.
Measured in docs/models.md.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from phototagger import search
from phototagger.decision import PLACE_NEIGHBOURS, PositionEstimate, place_from_library
from phototagger.index import tables as orm

#: GPS-less photos compared with the library's GPS photos at a time (memory: rows x GPS photos).
CHUNK = 256


def estimate(
    vectors: np.ndarray,
    times: Sequence[float | None],
    known: np.ndarray,
    positions: Sequence[tuple[float, float]],
    known_times: Sequence[float | None],
) -> list[PositionEstimate | None]:
    """Each GPS-less photo's estimate (embeddings ``vectors``, capture times in seconds or
    None) from the photos with camera GPS (``known``, at ``positions``)."""
    out: list[PositionEstimate | None] = [None] * len(vectors)
    if not len(known) or not len(vectors):
        return out
    for start in range(0, len(vectors), CHUNK):
        similarity = vectors[start:start + CHUNK] @ known.T
        for offset, row in enumerate(similarity):
            taken = times[start + offset]
            matches = []
            for index, value in search.top(row, PLACE_NEIGHBOURS):
                other = known_times[index]
                apart = None if taken is None or other is None else abs(taken - other)
                matches.append((value, positions[index], apart))
            out[start + offset] = place_from_library(matches)
    return out


def estimate_library(session: Session, network: str,
                     only: Collection[int] | None = None) -> int:
    """Estimate (again) the position of the indexed photos without camera GPS (of ``only``,
    photo ids, if given: a scan's new photos, not the whole library each night) from those
    with it, by this network's embeddings; how many got one. A photo that no longer matches
    loses its estimate, and one with camera GPS has none."""
    ids, vectors = search.stored(session, network)
    facts = {row.id: row for row in session.execute(
        select(orm.Photo.id, orm.Photo.camera_latitude, orm.Photo.camera_longitude,
               orm.Photo.taken_at).where(orm.Photo.status == "ok"))}
    rows = [facts[int(i)] for i in ids]
    has_gps = np.array([r.camera_latitude is not None and r.camera_longitude is not None
                        for r in rows], dtype=bool)
    known = [r for r, gps in zip(rows, has_gps, strict=True) if gps]
    wanted = ~has_gps if only is None else ~has_gps & np.isin(ids, list(only))
    found = estimate(
        vectors[wanted],
        [_seconds(r.taken_at) for r, want in zip(rows, wanted, strict=True) if want],
        vectors[has_gps],
        [(r.camera_latitude, r.camera_longitude) for r in known],
        [_seconds(r.taken_at) for r in known],
    )
    targets = [int(i) for i in ids[wanted]]
    updates = [{"id": photo_id,
                "estimated_latitude": e.latitude if e else None,
                "estimated_longitude": e.longitude if e else None,
                "estimated_spread_km": e.spread_km if e else None,
                "estimated_photos": e.photos if e else None}
               for photo_id, e in zip(targets, found, strict=True)]
    session.execute(update(orm.Photo).where(orm.Photo.camera_latitude.is_not(None),
                                            orm.Photo.estimated_latitude.is_not(None))
                    .values(estimated_latitude=None, estimated_longitude=None,
                            estimated_spread_km=None, estimated_photos=None))
    if updates:
        session.execute(update(orm.Photo), updates)
    return sum(1 for e in found if e is not None)


def _seconds(taken: datetime | None) -> float | None:
    """A capture time as seconds (a camera's clock: no zone, compared as it is)."""
    if taken is None:
        return None
    return (taken.replace(tzinfo=None) - datetime(1970, 1, 1)).total_seconds()
