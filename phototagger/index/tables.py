"""The index's tables, as SQLAlchemy 2 ORM classes.

A photo row carries its *current* landmark (from the best prediction, or a person's
confirmation) so that ``query`` is one indexed lookup; the full top-k per model stays in
``predictions`` and what went into each file stays in ``writes`` for exact undo.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

#: Text that sorts by code point whatever the database's collation: a server's default
#: (en_US, ICU) ignores case and punctuation, which breaks ``path >= '/a/'`` ranges.
BYTE_ORDER_TEXT = Text().with_variant(Text(collation="C"), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Landmark(Base):
    """A gazetteer row as the models know it; photos point here by slug."""

    __tablename__ = "landmarks"

    slug: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    aliases: Mapped[list] = mapped_column(JSON, default=list)
    city: Mapped[str | None] = mapped_column(String(200))
    region: Mapped[str | None] = mapped_column(String(200))
    country: Mapped[str | None] = mapped_column(String(200))
    country_code: Mapped[str | None] = mapped_column(String(2))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    #: Learned by this index (``phototagger learn``, or a person's tag of a new name), not a
    #: model file's; its photos are in ``gallery``.
    learned: Mapped[bool] = mapped_column(default=False)


class Model(Base):
    """A model file that predicted something; a new version or file is a new row."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[str] = mapped_column(String(300), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(100))
    architecture: Mapped[str] = mapped_column(String(100))
    sha256: Mapped[str] = mapped_column(String(64))
    threshold: Mapped[float] = mapped_column(Float)
    #: The evidence margins of its file (phototagger.decision.Policy); None: no gallery.
    tag_margin: Mapped[float | None] = mapped_column(Float)
    suggest_margin: Mapped[float | None] = mapped_column(Float)
    #: The probability a tag needs beside the threshold; None: the file has none.
    tag_probability: Mapped[float | None] = mapped_column(Float)
    first_used: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Root(Base):
    """A folder that was scanned: the app serves files from under these and nowhere else."""

    __tablename__ = "roots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text, unique=True)
    first_scanned: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Photo(Base):
    __tablename__ = "photos"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The path as text; names that are not valid UTF-8 are shown with backslash escapes here
    #: and kept exactly in ``path_bytes``. Compared byte by byte (SQLite's way, "C" on
    #: PostgreSQL), so that a folder is a range of the index and case counts, as on disk.
    path: Mapped[str] = mapped_column(BYTE_ORDER_TEXT, unique=True)
    path_bytes: Mapped[bytes | None] = mapped_column(LargeBinary)
    size: Mapped[int | None] = mapped_column(BigInteger)
    mtime_ns: Mapped[int | None] = mapped_column(BigInteger)
    content_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    format: Mapped[str | None] = mapped_column(String(10))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    taken_at: Mapped[datetime | None] = mapped_column(DateTime)
    camera_latitude: Mapped[float | None] = mapped_column(Float)
    camera_longitude: Mapped[float | None] = mapped_column(Float)
    #: Where a photo without camera GPS was probably taken, from the library's photos with
    #: camera GPS that look like it (phototagger.location): a suggestion, never camera GPS;
    #: how far apart those photos lay, and how many they were.
    estimated_latitude: Mapped[float | None] = mapped_column(Float)
    estimated_longitude: Mapped[float | None] = mapped_column(Float)
    estimated_spread_km: Mapped[float | None] = mapped_column(Float)
    estimated_photos: Mapped[int | None] = mapped_column(Integer)
    #: The share of the model's view with visible detail (imaging.detail); None: not measured.
    detail: Mapped[float | None] = mapped_column(Float)
    #: ok | failed | missing
    status: Mapped[str] = mapped_column(String(10), default="ok", index=True)
    error: Mapped[str | None] = mapped_column(Text)
    #: The current landmark: from a model (``auto``), a person (``confirmed``), or none.
    landmark_slug: Mapped[str | None] = mapped_column(ForeignKey("landmarks.slug"), index=True)
    confidence: Mapped[float | None] = mapped_column(Float)
    #: auto | confirmed | removed (a person took the tag away: scans leave it off)
    tag_state: Mapped[str | None] = mapped_column(String(10))
    #: A plausible landmark the evidence did not verify: shown for a person to confirm, never
    #: written into the file (phototagger.decision).
    suggested_slug: Mapped[str | None] = mapped_column(
        ForeignKey("landmarks.slug", name="fk_photos_suggested_slug"), index=True
    )
    #: Why the last scan decided as it did (a phototagger.decision.Reason).
    decision: Mapped[str | None] = mapped_column(String(20))
    #: The threshold it was decided with (a scan's --threshold); None: the model's own.
    decided_threshold: Mapped[float | None] = mapped_column(Float)
    #: Why the landmark could not be written into the file; the next scan tries again.
    write_error: Mapped[str | None] = mapped_column(Text)
    model_pk: Mapped[int | None] = mapped_column(ForeignKey("models.id"))
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    landmark: Mapped[Landmark | None] = relationship(lazy="joined", foreign_keys=[landmark_slug])
    suggestion: Mapped[Landmark | None] = relationship(lazy="joined",
                                                       foreign_keys=[suggested_slug])
    predictions: Mapped[list[Prediction]] = relationship(
        back_populates="photo", cascade="all, delete-orphan", order_by="Prediction.rank"
    )
    writes: Mapped[list[Write]] = relationship(back_populates="photo", cascade="all, delete-orphan")

    @property
    def fs_path(self) -> str:
        """The path as the file system knows it (exact bytes for non-UTF-8 names)."""
        return os.fsdecode(self.path_bytes) if self.path_bytes is not None else self.path


class Prediction(Base):
    """One of the top-k answers of one model for one photo; rank 0 is the best."""

    __tablename__ = "predictions"
    __table_args__ = (UniqueConstraint("photo_id", "model_pk", "rank"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"))
    model_pk: Mapped[int] = mapped_column(ForeignKey("models.id"))
    rank: Mapped[int] = mapped_column(Integer)
    slug: Mapped[str] = mapped_column(String(200))
    probability: Mapped[float] = mapped_column(Float)
    #: The evidence (phototagger.decision.Evidence); None from a file without reference photos.
    similarity: Mapped[float | None] = mapped_column(Float)
    ordinary: Mapped[float | None] = mapped_column(Float)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    photo: Mapped[Photo] = relationship(back_populates="predictions")
    model: Mapped[Model] = relationship()


class Embedding(Base):
    """A photo's embedding by one network (``phototagger.model.network_id``): the vector the
    reference photos are compared with, unit length, float16 (256 bytes at 128 dimensions).

    Keyed by the network, not the model file: a file that changes only its metadata keeps the
    library's embeddings, and what an index learns (phototagger.vocabulary) is computed from
    them without decoding a photo again.
    """

    __tablename__ = "embeddings"

    photo_id: Mapped[int] = mapped_column(
        ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True
    )
    network: Mapped[str] = mapped_column(String(16), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class GalleryPhoto(Base):
    """One photo a learned landmark was learned from: its embedding by one network."""

    __tablename__ = "gallery"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(
        ForeignKey("landmarks.slug", ondelete="CASCADE"), index=True
    )
    network: Mapped[str] = mapped_column(String(16))
    #: Where the photo was when it was learned (for the record: it need not stay there).
    source: Mapped[str] = mapped_column(Text)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    added: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Write(Base):
    """What phototagger wrote into which file, so that ``untag`` can undo exactly that."""

    __tablename__ = "writes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"))
    target: Mapped[str] = mapped_column(Text)
    mode: Mapped[str] = mapped_column(String(10))
    slug: Mapped[str] = mapped_column(String(200))
    gps_written: Mapped[bool] = mapped_column(default=False)
    written: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    photo: Mapped[Photo] = relationship(back_populates="writes")


class Run(Base):
    """One ``scan``: when, with what, and its closing summary."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    model_pk: Mapped[int | None] = mapped_column(ForeignKey("models.id"))
    roots: Mapped[list] = mapped_column(JSON, default=list)
    options: Mapped[dict] = mapped_column(JSON, default=dict)
    summary: Mapped[dict | None] = mapped_column(JSON)
