"""The library: one index database, its migrations, its lock, and the questions asked of it."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from filelock import FileLock, Timeout
from platformdirs import user_cache_dir
from sqlalchemy import create_engine, event, func, select
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, selectinload, sessionmaker
from sqlalchemy.pool import StaticPool

import migrations
from phototagger import landmarks as gazetteer
from phototagger.config import shown_url
from phototagger.decision import Outcome
from phototagger.errors import ConfigError, IndexLockedError
from phototagger.index import tables as orm
from phototagger.model import LandmarkModel


def _alembic_config():
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    return config


def canonical(path: str | os.PathLike) -> str:
    """``path`` absolute, with the folders it goes through resolved; a file keeps its own name
    even when it is a link (the walk reports a linked file under the link's name)."""
    absolute = os.path.abspath(path)
    if os.path.isdir(absolute):
        return os.path.realpath(absolute)
    folder, name = os.path.split(absolute)
    return os.path.join(os.path.realpath(folder), name)


def path_key(path: str | os.PathLike) -> tuple[str, bytes | None]:
    """The text kept in ``photos.path``, plus the exact bytes when the name is not UTF-8."""
    text = os.fspath(path)
    try:
        text.encode("utf-8")
        return text, None
    except UnicodeEncodeError:
        raw = os.fsencode(text)
        return raw.decode("utf-8", "backslashreplace"), raw


def _under(column, folder: str):
    """``column`` lies inside ``folder``; a range test, so the index is used and case counts."""
    prefix = path_key(folder)[0].rstrip("/") + "/"
    return (column >= prefix) & (column < prefix[:-1] + "0")


#: What ``find`` can list: tagged (by the model or a person), suggested (plausible, for a
#: person to confirm), none (neither), person (a person's tag or removal), all.
STATES = ("tagged", "suggested", "none", "person", "all")

#: A scan's rule (phototagger.decision.decide with the scan's policy) for an indexed photo's
#: recorded best guess: (guess, camera GPS, detail) -> the outcome it calls for.
TagRule = Callable[["BestGuess", tuple[float, float] | None, float | None], Outcome]


@dataclass(frozen=True, slots=True)
class BestGuess:
    """A model's recorded best answer for a photo, with its evidence (None: no gallery)."""

    slug: str
    probability: float
    similarity: float | None = None
    ordinary: float | None = None


@dataclass(frozen=True, slots=True)
class KnownPhoto:
    """What change detection needs to know of an indexed photo, without loading the row."""

    id: int
    size: int | None
    mtime_ns: int | None
    content_hash: str | None
    status: str
    predicted: bool
    write_pending: bool = False
    #: The current model's best answer, if it has predicted this photo.
    best: BestGuess | None = None
    tag_state: str | None = None  # auto | confirmed | removed
    landmark_slug: str | None = None
    suggested_slug: str | None = None
    #: The landmarks phototagger's recorded writes put into the file (or its sidecar).
    written_slugs: frozenset[str] = frozenset()
    camera_gps: tuple[float, float] | None = None
    detail: float | None = None

    def tags_out_of_date(self, rule: TagRule, writing: bool) -> bool:
        """Whether this scan's rule or write mode wants other tags (or another suggestion)
        than recorded.

        Raising ``--threshold`` takes back an automatic tag below it (from the file too, once
        a scan writes again, if one with ``--write none`` took it from the index), lowering it
        tags what now clears it, and a scan that writes after one with ``--write none``
        writes. A person's decision is never changed; a person's landmark whose tags are not
        in the file (``untag --retag``, ``tag --write none``) is written by a writing scan.
        """
        if self.tag_state == "confirmed":
            return writing and self.landmark_slug is not None and not self.written_slugs
        if self.best is None or self.tag_state == "removed":
            return False
        slug = self.best.slug
        outcome = rule(self.best, self.camera_gps, self.detail)
        if outcome is not Outcome.TAGGED:
            wanted = slug if outcome is Outcome.SUGGESTED else None
            return (self.tag_state == "auto" or (writing and bool(self.written_slugs))
                    or self.suggested_slug != wanted)
        if self.tag_state != "auto" or self.landmark_slug != slug:
            return True
        return writing and slug not in self.written_slugs


class Library:
    """An index of photos, opened by SQLAlchemy URL and migrated to the current schema."""

    def __init__(self, url: str, migrate: bool = True):
        self.url = url
        #: The URL to print: a server's password must not end up in cron mail or logs.
        self.shown_url = shown_url(url)
        try:
            self.engine = _make_engine(url)
        except ImportError as error:  # the URL names a database whose driver is not installed
            psycopg = make_url(url).get_driver_name() == "psycopg"
            hint = " (pip install 'phototagger[postgres]')" if psycopg else ""
            raise ConfigError(
                f"cannot open index {self.shown_url}: its driver is not installed: "
                f"{error.name or error}{hint}"
            ) from None
        except (SQLAlchemyError, ValueError, OSError) as error:
            raise ConfigError(f"cannot open index {self.shown_url}: {error}") from None
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        if migrate:
            self.upgrade()

    def upgrade(self) -> None:
        """Apply the Alembic migrations in ``migrations/`` (first use creates the schema)."""
        from alembic import command
        from alembic.util import CommandError

        config = _alembic_config()
        try:
            with self.engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    # Two first uses at once would both create the tables and one would fail:
                    # the second waits for the first's commit, then finds nothing to do.
                    key = _advisory_key(connection, "migrate")
                    connection.execute(select(func.pg_advisory_xact_lock(key)))
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except CommandError as error:  # a revision this version's migrations do not know
            raise ConfigError(
                f"cannot prepare index {self.shown_url}: {_first_line(error)} (made by a newer "
                "phototagger? upgrade phototagger to use it)"
            ) from None
        except SQLAlchemyError as error:
            raise ConfigError(
                f"cannot prepare index {self.shown_url}: {_first_line(error.orig or error)}"
            ) from None

    def schema_state(self) -> str:
        """``empty`` (no schema yet), ``current``, or ``behind`` (migrations to apply).

        Asked without changing anything, for a dry run that must not create or upgrade.
        """
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
        try:
            with self.engine.connect() as connection:
                current = MigrationContext.configure(connection).get_current_revision()
        except SQLAlchemyError as error:
            raise ConfigError(
                f"cannot read index {self.shown_url}: {_first_line(error.orig or error)}"
            ) from None
        if current is None:
            return "empty"
        return "current" if current == head else "behind"

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessions() as session:
            yield session

    @contextmanager
    def lock(self, wait: float = 0) -> Iterator[None]:
        """Hold the index's scan lock; a second scan waits ``wait`` seconds, then gives up.

        SQLite: a file lock next to the database. PostgreSQL: an advisory lock on the server,
        so that scans from any machine, by any spelling of the URL, exclude each other, and a
        scan that is killed frees it with its connection. Other servers: a lock file per URL,
        which only keeps out scans on this machine.
        """
        if self.engine.dialect.name == "postgresql":
            with _advisory_lock(self.engine, wait):
                yield
            return
        lock_path = _lock_path(self.url)
        if lock_path is None:
            yield
            return
        lock = FileLock(str(lock_path))
        try:
            lock.acquire(timeout=wait)
        except Timeout:
            raise IndexLockedError(_locked_message(f"lock {lock_path}")) from None
        try:
            yield
        finally:
            lock.release()

    # -- models and landmarks ------------------------------------------------------------

    def ensure_model(self, session: Session, model: LandmarkModel) -> orm.Model:
        """The model's row (created on first use) with its landmarks upserted."""
        row = session.scalar(select(orm.Model).where(orm.Model.model_id == model.model_id))
        if row is None:
            row = orm.Model(
                model_id=model.model_id,
                name=model.name,
                version=model.version,
                architecture=model.architecture,
                sha256=model.sha256,
                threshold=model.threshold,
                tag_margin=(model.evidence or {}).get("tag_margin"),
                suggest_margin=(model.evidence or {}).get("suggest_margin"),
                tag_probability=(model.evidence or {}).get("tag_probability"),
            )
            session.add(row)
        self.ensure_landmarks(session, model.classes)
        session.flush()
        return row

    def ensure_landmarks(self, session: Session, landmarks: Iterable[gazetteer.Landmark]) -> None:
        for landmark in landmarks:
            row = session.get(orm.Landmark, landmark.slug) or orm.Landmark(slug=landmark.slug)
            for key, value in landmark.to_dict().items():
                setattr(row, key, value)
            session.add(row)

    # -- change detection ----------------------------------------------------------------

    def add_roots(self, session: Session, roots: Sequence[Path]) -> None:
        known = set(session.scalars(select(orm.Root.path)))
        for root in roots:
            text = path_key(root)[0]
            if text not in known:
                session.add(orm.Root(path=text))
                known.add(text)

    def indexed_path(self, session: Session, path: str | os.PathLike) -> str:
        """The path the index knows the file or folder at ``path`` by, or a scan would record.

        A scan records a photo as its scanned folder's path plus the path from there as the
        walk lists it (links inside the library keep their names). So the shortest leading
        part of ``path`` that resolves to, or into, a scanned folder is spelled as the index
        spells that folder, and the rest is kept: ``~/Pictures`` and a link to it are one
        library, with no duplicate rows. Outside every scanned folder: :func:`canonical`.
        """
        absolute = os.path.abspath(path)
        roots = sorted(
            ((root, os.path.realpath(root)) for root in session.scalars(select(orm.Root.path))),
            key=lambda pair: (pair[0] != pair[1], pair[0]),  # a root by its real path first
        )
        parts = Path(absolute).parts
        for end in range(1, len(parts) + 1):
            real = os.path.realpath(os.path.join(*parts[:end]))
            for root, real_root in roots:
                if real == real_root or real.startswith(real_root.rstrip("/") + "/"):
                    return os.path.join(root + real[len(real_root) :], *parts[end:])
        return canonical(absolute)

    def known_photos(
        self, session: Session, roots: Sequence[Path], model_pk: int
    ) -> dict[str, KnownPhoto]:
        """Every indexed photo under ``roots``, keyed by file-system path, in three queries."""
        inside = None
        for root in roots:
            clause = _under(orm.Photo.path, str(root)) | (orm.Photo.path == path_key(root)[0])
            inside = clause if inside is None else inside | clause

        def under_roots(query):  # a scan of one folder need not read a whole library's rows
            return query if inside is None else query.join(orm.Photo).where(inside)

        best_query = select(
            orm.Prediction.photo_id,
            orm.Prediction.slug,
            orm.Prediction.probability,
            orm.Prediction.similarity,
            orm.Prediction.ordinary,
        ).where(orm.Prediction.model_pk == model_pk, orm.Prediction.rank == 0)
        # Plain tuples over the session's connection: a million rows is the everyday case for a
        # nightly scan, and ORM rows read by attribute name cost ten times as much.
        connection = session.connection()
        best = {photo_id: BestGuess(slug, probability, similarity, ordinary)
                for photo_id, slug, probability, similarity, ordinary
                in connection.execute(under_roots(best_query)).all()}
        written: dict[int, frozenset[str]] = {}
        writes_query = select(orm.Write.photo_id, orm.Write.slug)
        for photo_id, slug in connection.execute(under_roots(writes_query)).all():
            written[photo_id] = written.get(photo_id, frozenset()) | {slug}
        query = select(
            orm.Photo.id,
            orm.Photo.path,
            orm.Photo.path_bytes,
            orm.Photo.size,
            orm.Photo.mtime_ns,
            orm.Photo.content_hash,
            orm.Photo.status,
            orm.Photo.write_error,
            orm.Photo.tag_state,
            orm.Photo.landmark_slug,
            orm.Photo.suggested_slug,
            orm.Photo.camera_latitude,
            orm.Photo.camera_longitude,
            orm.Photo.detail,
        )
        if inside is not None:
            query = query.where(inside)
        known = {}
        nothing: frozenset[str] = frozenset()
        for (photo_id, path, path_bytes, size, mtime_ns, content_hash, status, write_error,
             tag_state, landmark_slug, suggested_slug, latitude, longitude,
             detail) in connection.execute(query).all():
            guess = best.get(photo_id)
            known[path if path_bytes is None else os.fsdecode(path_bytes)] = KnownPhoto(
                photo_id,
                size,
                mtime_ns,
                content_hash,
                status,
                guess is not None,
                write_error is not None,
                guess,
                tag_state,
                landmark_slug,
                suggested_slug,
                written.get(photo_id, nothing),
                None if latitude is None or longitude is None else (latitude, longitude),
                detail,
            )
        return known

    def photo_at(self, session: Session, path: str | os.PathLike) -> orm.Photo | None:
        return session.scalar(select(orm.Photo).where(orm.Photo.path == path_key(path)[0]))

    def photo_for_update(self, session: Session, path: str | os.PathLike) -> orm.Photo:
        """The photo row at ``path``, created if the index has never seen it."""
        return self.photos_for_update(session, [path])[path]

    def photos_for_update(
        self, session: Session, paths: Sequence[str | os.PathLike]
    ) -> dict[str | os.PathLike, orm.Photo]:
        """The photo rows at ``paths`` in one query (a scan records a batch at a time), each
        created if the index has never seen it."""
        keys = {path: path_key(path) for path in paths}
        texts = [text for text, _ in keys.values()]
        rows = {photo.path: photo
                for photo in session.scalars(select(orm.Photo).where(orm.Photo.path.in_(texts)))}
        photos = {}
        for path, (text, raw) in keys.items():
            if text not in rows:
                rows[text] = orm.Photo(path=text, path_bytes=raw)
                session.add(rows[text])
            photos[path] = rows[text]
        return photos

    # -- questions -----------------------------------------------------------------------

    def find(
        self,
        session: Session,
        *,
        landmark: str | None = None,
        country: str | None = None,
        city: str | None = None,
        min_confidence: float | None = None,
        under: str | os.PathLike | None = None,
        estimated_in: tuple[float, float, float, float] | None = None,
        limit: int | None = None,
        state: str = "tagged",
    ) -> list[orm.Photo]:
        """Indexed photos in ``state`` (see STATES) matching every given filter; names match
        partially, any case or accent, the landmark a photo is tagged with or suggested as.
        ``estimated_in``: (south, west, north, east), the photos whose position estimated from
        the library's GPS (phototagger.location) lies at or past south and west and short of
        north and east, so that boxes side by side share no photo (the app's map)."""
        if state not in STATES:
            raise ConfigError(f"unknown state {state!r}: use {', '.join(STATES)}")
        shown = func.coalesce(orm.Photo.landmark_slug, orm.Photo.suggested_slug)
        query = select(orm.Photo).where(orm.Photo.status == "ok").order_by(orm.Photo.path)
        tagged = orm.Photo.landmark_slug.is_not(None)
        suggested = ~tagged & orm.Photo.suggested_slug.is_not(None)
        query = query.where({
            "tagged": tagged,
            "suggested": suggested,
            "none": ~tagged & orm.Photo.suggested_slug.is_(None),
            "person": orm.Photo.tag_state.in_(("confirmed", "removed")),
            "all": orm.Photo.id.is_not(None),
        }[state])
        slugs = self._matching_slugs(session, landmark, country, city)
        if slugs is not None:
            # The column a state implies, where it implies one, so its index serves the query.
            column = {"tagged": orm.Photo.landmark_slug,
                      "suggested": orm.Photo.suggested_slug}.get(state, shown)
            query = query.where(column.in_(slugs))
        if min_confidence is not None:
            # A person's confirmation has no score and always passes.
            query = query.where(
                (orm.Photo.tag_state == "confirmed") | (orm.Photo.confidence >= min_confidence)
            )
        if under is not None:
            query = query.where(_under(orm.Photo.path, self.indexed_path(session, under)))
        if estimated_in is not None:
            south, west, north, east = estimated_in
            query = query.where(orm.Photo.estimated_latitude >= south,
                                orm.Photo.estimated_latitude < north,
                                orm.Photo.estimated_longitude >= west,
                                orm.Photo.estimated_longitude < east)
        if limit is not None:
            query = query.limit(limit)
        # The 49-odd landmark rows once, not joined into every photo row.
        query = query.options(selectinload(orm.Photo.landmark), selectinload(orm.Photo.suggestion))
        return list(session.scalars(query))

    def _matching_slugs(
        self, session: Session, landmark: str | None, country: str | None, city: str | None
    ) -> list[str] | None:
        if landmark is None and country is None and city is None:
            return None
        rows = list(session.scalars(select(orm.Landmark)))
        if landmark is not None:
            as_gazetteer = [gazetteer.Landmark.from_dict(_row_dict(row)) for row in rows]
            wanted = {lm.slug for lm in gazetteer.match(as_gazetteer, landmark)}
            rows = [row for row in rows if row.slug in wanted]
        for field, value in (("country", country), ("city", city)):
            if value is not None:
                folded = gazetteer.fold(value)
                rows = [r for r in rows if _field_matches(r, field, folded)]
        return [row.slug for row in rows]

    def landmark_counts(self, session: Session) -> dict[str, int]:
        """Tagged photos per landmark slug."""
        query = (
            select(orm.Photo.landmark_slug, func.count())
            .where(orm.Photo.landmark_slug.is_not(None), orm.Photo.status == "ok")
            .group_by(orm.Photo.landmark_slug)
        )
        return {slug: count for slug, count in session.execute(query)}

    def landmark(self, session: Session, slug: str) -> gazetteer.Landmark | None:
        row = session.get(orm.Landmark, slug)
        return None if row is None else gazetteer.Landmark.from_dict(_row_dict(row))

    def all_landmarks(self, session: Session) -> list[gazetteer.Landmark]:
        rows = session.scalars(select(orm.Landmark).order_by(orm.Landmark.name))
        return [gazetteer.Landmark.from_dict(_row_dict(row)) for row in rows]

    def is_inside_roots(self, session: Session, path: str | os.PathLike) -> bool:
        """Whether ``path`` (already resolved) lies inside a folder that was scanned."""
        return is_inside(path, self.root_folders(session))

    def root_folders(self, session: Session) -> set[str]:
        """The folders scanned into this index, as recorded and by their real paths: a root
        scanned through a symbolic link holds photos under its real path too."""
        roots = set(session.scalars(select(orm.Root.path)))
        return roots | {path_key(os.path.realpath(root))[0] for root in roots}


def is_inside(path: str | os.PathLike, folders: Iterable[str]) -> bool:
    """Whether ``path`` is one of ``folders`` or lies inside one (paths compared as written)."""
    text = path_key(path)[0]
    return any(text == folder or text.startswith(folder.rstrip("/") + "/") for folder in folders)


def recorded_explanation(photo: orm.Photo, landmarks: dict[str, gazetteer.Landmark]) -> str | None:
    """The last scan's decision on ``photo`` in plain words, from what the index recorded
    (its reason, the latest model's best guess with its evidence, that model's policy);
    ``landmarks`` by slug. None when no scan decided it."""
    from phototagger.decision import Decision, Evidence, Policy, Reason

    if photo.tag_state in ("confirmed", "removed"):  # a person's word outlasts any scan's
        reason = Reason.PERSON if photo.tag_state == "confirmed" else Reason.REMOVED
        landmark = landmarks.get(photo.landmark_slug or "")
        evidence = None if landmark is None else Evidence(landmark, 1.0)
        return Decision.recorded(reason.value, evidence).explain(Policy(0.0))
    best = [p for p in photo.predictions if p.rank == 0]
    if not photo.decision or not best:
        return None
    latest = max(best, key=lambda p: p.model_pk)
    landmark = landmarks.get(latest.slug) or gazetteer.Landmark(latest.slug, latest.slug)
    evidence = Evidence(landmark, latest.probability, latest.similarity, latest.ordinary)
    camera = (photo.camera_latitude, photo.camera_longitude)
    decision = Decision.recorded(photo.decision, evidence, None if None in camera else camera)
    policy = Policy.recorded(latest.model)
    if photo.decided_threshold is not None:  # the scan's own --threshold
        policy = replace(policy, threshold=photo.decided_threshold)
    return decision.explain(policy)


def _row_dict(row: orm.Landmark) -> dict:
    fields = ("slug", "name", "aliases", "city", "region", "country", "country_code")
    data = {key: getattr(row, key) for key in fields}
    data.update(latitude=row.latitude, longitude=row.longitude)
    return data


def _field_matches(row: orm.Landmark, field: str, folded: str) -> bool:
    """A country by its ISO code (``it`` exactly, or ``ITA``), by a name ISO or people use
    for it (``Viet Nam``, ``UK``), or by its name in the gazetteer; a city by its name. A
    name matches from the start of any of its words (``united`` and ``kingdom`` find the
    United Kingdom, ``it`` finds no "United"). A landmark with no country (the Dome of the
    Rock: Jerusalem's is disputed) answers to no country, only to its city."""
    value = getattr(row, field)
    if field == "country":
        code = gazetteer.country_code(folded)
        if code is not None and row.country_code and code == row.country_code.upper():
            return True
        if len(folded) == 2 and folded.isalpha():
            return False  # a two-letter code names one country, never a word's beginning
    # An empty ``folded`` (the user typed only punctuation, such as "%") matches nothing.
    return bool(value and folded) and f" {folded}" in f" {gazetteer.fold(value)}"


def _first_line(error: BaseException) -> str:
    """A database driver's message, whose later lines (hints, context) a CLI line cannot hold."""
    return (str(error).splitlines() or [type(error).__name__])[0]


def _make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if not parsed.database or parsed.database == ":memory:":
        # One connection for all: each new connection would otherwise see an empty database.
        return create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets `query` and the app read while a scan writes; NORMAL is durable in WAL mode
        # except for the last transactions before a power cut, which the next scan redoes.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def _locked_message(what: str) -> str:
    return (
        f"another phototagger scan is using this index ({what});"
        " try again later or pass --wait SECONDS"
    )


def _advisory_key(connection: Connection, purpose: str) -> int:
    """A PostgreSQL advisory lock key (64 bits) for ``purpose`` in this index's schema.

    Advisory locks are per database; the schema is part of the key so that two indexes kept in
    one database in different schemas don't hold each other up.
    """
    schema = connection.scalar(select(func.current_schema()))
    digest = hashlib.sha256(f"phototagger {purpose} {schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def _advisory_lock(engine: Engine, wait: float) -> Iterator[None]:
    """Hold a session advisory lock on a connection of its own for as long as the scan runs.

    The connection is in autocommit mode, so it never sits idle inside a transaction (which
    would hold back VACUUM, or be cut off by ``idle_in_transaction_session_timeout``).
    """
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        key = _advisory_key(connection, "scan")
        deadline = time.monotonic() + wait
        while not connection.scalar(select(func.pg_try_advisory_lock(key))):
            left = deadline - time.monotonic()
            if left <= 0:
                database = connection.scalar(select(func.current_database()))
                raise IndexLockedError(
                    _locked_message(f"PostgreSQL advisory lock {key} in database {database}")
                )
            time.sleep(min(0.1, left))
        try:
            yield
        finally:
            try:
                connection.execute(select(func.pg_advisory_unlock(key)))
            except SQLAlchemyError:
                # The connection is gone, and with it the lock; the scan's own error matters.
                connection.invalidate()


def _lock_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            return None
        index = Path(parsed.database).expanduser()
        # The index's whole name: index.db and index.sqlite3 are two indexes, not one lock.
        return index.with_name(index.name + ".lock")
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    folder = Path(user_cache_dir("phototagger")) / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{digest}.lock"
