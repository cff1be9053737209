"""Places: groups of the library's untagged photos that look like the same place.

``phototagger places`` clusters the stored embeddings (phototagger.search) of the photos no
landmark explains, tagged or suggested, with scikit-learn's HDBSCAN, so that a person can
name a place the model does not know and learn it (``learn NAME --from-place ID``). A photo
a person took a tag from takes part: it shows no known landmark, but may show a place. One
that looks like the model's ordinary photos does not: food or faces would be "places".

A place's id is a hash of its photos (and of ``min_photos``, which shapes the clustering):
the clustering is computed again, deterministically, whenever it is asked for, so the id
``places`` printed finds the same photos for ``learn --from-place`` as long as the library's
untagged photos have not changed; when they have, the id is gone rather than wrong.
Parameters measured in docs/models.md.
"""

from __future__ import annotations

import hashlib
import statistics
from dataclasses import dataclass

import numpy as np
from sqlalchemy import ColumnElement, exists, select
from sqlalchemy.orm import Session

from phototagger import search
from phototagger.errors import ConfigError
from phototagger.index import tables as orm
from phototagger.landmarks import distance_km

#: The fewest photos a place is made of (as a learned landmark's gallery needs).
MIN_PHOTOS = 5
#: A photo at least this alike the model's ordinary reference photos (food, faces, receipts:
#: photos of no landmark) is of no place: ordinary photos of one kind look alike too.
ORDINARY_LIMIT = 0.7
#: Up to this many photos, HDBSCAN compares every pair at once: 6 to 10 times faster than
#: its trees in 128 dimensions, in memory that grows with the square (0.4 GB at 4,000 photos,
#: 1.7 GB at 10,000).
BRUTE_UP_TO = 5000
#: A place whose GPS photos all lie this near their median gives that median as the position
#: of a landmark learned from it.
SMALL_SPREAD_KM = 1.0


@dataclass(frozen=True)
class Place:
    """One cluster: its photos (ids and paths, best first) and where their camera GPS puts it."""

    id: str
    photo_ids: list[int]
    paths: list[str]
    vectors: np.ndarray
    #: The median of its photos' camera GPS positions, and how many of them have one.
    latitude: float | None = None
    longitude: float | None = None
    gps_photos: int = 0
    #: The farthest of those positions from the median, in km.
    spread_km: float | None = None

    @property
    def position(self) -> tuple[float, float] | None:
        """Where a landmark learned from it stands by default: the median, when tight."""
        if self.latitude is None or self.spread_km is None or self.spread_km >= SMALL_SPREAD_KM:
            return None
        return self.latitude, self.longitude


def cluster(vectors: np.ndarray, min_photos: int = MIN_PHOTOS) -> np.ndarray:
    """Each row's cluster label (-1: in none), by HDBSCAN on the unit vectors (their
    euclidean distance orders pairs as their cosine does)."""
    from sklearn.cluster import HDBSCAN

    if len(vectors) < min_photos:
        return np.full(len(vectors), -1)
    algorithm = "brute" if len(vectors) <= BRUTE_UP_TO else "auto"
    return HDBSCAN(min_cluster_size=min_photos, algorithm=algorithm,
                   copy=True).fit_predict(vectors)


def unexplained() -> ColumnElement[bool]:
    """The photos no landmark explains (neither tagged nor suggested) that do not look like
    ordinary photos (their stored evidence)."""
    ordinary = exists().where(orm.Prediction.photo_id == orm.Photo.id,
                              orm.Prediction.rank == 0,
                              orm.Prediction.ordinary >= ORDINARY_LIMIT)
    return orm.Photo.landmark_slug.is_(None) & orm.Photo.suggested_slug.is_(None) & ~ordinary


def find_places(session: Session, network: str, min_photos: int = MIN_PHOTOS) -> list[Place]:
    """The places among the untagged photos with an embedding by ``network``, largest first."""
    if min_photos < 2:
        raise ConfigError("a place is at least 2 photos")
    ids, vectors = search.stored(session, network, unexplained())
    labels = cluster(vectors, min_photos)
    facts = {row.id: row for row in session.execute(
        select(orm.Photo.id, orm.Photo.path, orm.Photo.camera_latitude,
               orm.Photo.camera_longitude).where(orm.Photo.id.in_(
                   [int(i) for i in ids[labels >= 0]])))}
    places = []
    for label in sorted(set(labels.tolist()) - {-1}):
        rows = np.flatnonzero(labels == label)
        centre = vectors[rows].mean(0)
        rows = rows[np.argsort(-(vectors[rows] @ centre), kind="stable")]  # most typical first
        members = [int(ids[row]) for row in rows]
        places.append(_place(min_photos, members, [facts[i] for i in members], vectors[rows]))
    return sorted(places, key=lambda p: (-len(p.photo_ids), p.id))


def place(session: Session, network: str, place_id: str) -> Place:
    """The place ``places`` printed as ``place_id``; a one-line error when it is gone."""
    min_photos, _, _ = place_id.partition("-")
    if not min_photos.isdigit():
        raise ConfigError(f"not a place id: {place_id!r} (`phototagger places` lists them)")
    for found in find_places(session, network, int(min_photos)):
        if found.id == place_id:
            return found
    raise ConfigError(f"no place {place_id} in this index now (its untagged photos changed "
                      "since): `phototagger places` lists the places as they are")


def _place(min_photos: int, members: list[int], rows: list, vectors: np.ndarray) -> Place:
    digest = hashlib.sha256(",".join(map(str, sorted(members))).encode()).hexdigest()[:8]
    gps = [(r.camera_latitude, r.camera_longitude) for r in rows
           if r.camera_latitude is not None and r.camera_longitude is not None]
    latitude = longitude = spread = None
    if gps:
        latitude = statistics.median(lat for lat, _ in gps)
        longitude = statistics.median(lon for _, lon in gps)
        spread = max(distance_km((latitude, longitude), position) for position in gps)
    return Place(f"{min_photos}-{digest}", members, [r.path for r in rows], vectors,
                 latitude, longitude, len(gps), spread)
