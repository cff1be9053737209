"""Photo embeddings as the index keeps them, and the search for the photos most alike.

An embedding is a unit vector (phototagger.model.Scores.embeddings); the index stores it as
float16 bytes: 256 bytes at the shipped model's 128 dimensions, half a percent from the float32
cosines (it only ranks neighbours). Searching is a matrix product over the library's
embeddings in numpy, so ``similar`` needs neither torch nor the model file.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import ColumnElement, select, type_coerce
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.types import NullType

from phototagger.index import tables as orm

#: How the index stores an embedding: little-endian float16.
STORED = np.dtype("<f2")


def encode(vector: Sequence[float] | np.ndarray) -> bytes:
    """One embedding as the index stores it."""
    return np.asarray(vector, dtype=np.float32).astype(STORED).tobytes()


def decode(blobs: Sequence[bytes]) -> np.ndarray:
    """Stored embeddings as one float32 matrix, a row each (none: a 0 x 0 matrix)."""
    if not blobs:
        return np.zeros((0, 0), dtype=np.float32)
    width = len(blobs[0]) // STORED.itemsize
    return np.frombuffer(b"".join(blobs), dtype=STORED).astype(np.float32).reshape(-1, width)


def stored(session: Session, network: str,
           where: ColumnElement[bool] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ids and embeddings (a row each, in id order) of the indexed photos that have one
    by ``network``, those matching ``where`` (a condition on ``photos``) if given."""
    # bytes as the driver gives them: LargeBinary's processor, a call per row, cost a third
    query = (select(orm.Embedding.photo_id, type_coerce(orm.Embedding.vector, NullType))
             .join(orm.Photo, orm.Photo.id == orm.Embedding.photo_id)
             .where(orm.Embedding.network == network, orm.Photo.status == "ok")
             .order_by(orm.Embedding.photo_id))
    if where is not None:
        query = query.where(where)
    rows = session.connection().execute(query).all()  # plain rows, not ORM objects
    ids = np.fromiter((photo_id for photo_id, _ in rows), dtype=np.int64, count=len(rows))
    return ids, decode([vector for _, vector in rows])


def nearest(vectors: np.ndarray, query: np.ndarray, limit: int) -> list[tuple[int, float]]:
    """The rows of ``vectors`` most alike ``query`` (cosine: both unit length), best first,
    as (row, similarity); ties in row order."""
    if not len(vectors):
        return []
    return top(vectors @ np.asarray(query, dtype=np.float32), limit)


def top(similarity: np.ndarray, limit: int) -> list[tuple[int, float]]:
    """The ``limit`` highest of a row of similarities, best first, as (index, similarity)."""
    if not len(similarity) or limit < 1:
        return []
    limit = min(limit, len(similarity))
    top = np.argpartition(-similarity, limit - 1)[:limit]
    top = top[np.lexsort((top, -similarity[top]))]
    return [(int(row), float(similarity[row])) for row in top]


def embedding_of(session: Session, photo: orm.Photo | None, network: str) -> np.ndarray | None:
    """An indexed photo's stored embedding by ``network``; None when it has none."""
    if photo is None:
        return None
    row = session.get(orm.Embedding, (photo.id, network))
    return None if row is None else decode([row.vector])[0]


def similar(session: Session, network: str, query: np.ndarray, limit: int = 10,
            exclude: int | None = None) -> list[tuple[orm.Photo, float]]:
    """The indexed photos most alike an embedding, best first, with their similarity;
    ``exclude``: a photo id left out (the photo asked about)."""
    ids, vectors = stored(session, network)
    if exclude is not None:
        keep = ids != exclude
        ids, vectors = ids[keep], vectors[keep]
    found = nearest(vectors, query, limit)
    wanted = [int(ids[row]) for row, _ in found]
    photos = {photo.id: photo for photo in session.scalars(
        select(orm.Photo).where(orm.Photo.id.in_(wanted))
        .options(selectinload(orm.Photo.landmark), selectinload(orm.Photo.suggestion)))}
    return [(photos[photo_id], similarity)
            for photo_id, (_, similarity) in zip(wanted, found, strict=True)]
