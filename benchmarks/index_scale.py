"""How does the index hold a million photos? Change detection, queries and recording, timed on
a bulk-loaded synthetic library, each beside a floor measured in the same run, with the plans.

Prints figures; never passes or fails. It needs an empty database it may fill (the tables are
made by the index's own migrations). Run from the repository root, for example against a
throwaway PostgreSQL server (docs/scale.md says how to start one):

    .venv/bin/python benchmarks/index_scale.py \
        --db 'postgresql+psycopg://phototagger@/bench?host=/tmp/pgb' --photos 1000000

What it measures, with the code a scan and ``query`` run (nothing re-implemented):
- change detection of a nightly scan over N unchanged files: ``Library.known_photos`` and
  ``plan_changes`` with the scan's tag rule, on stat data of every photo; floor: reading the
  same rows' path, size and mtime in one plain query;
- ``query --landmark`` (all matches, and the first 100), ``query --under`` a folder,
  ``query --suggested --limit 100``: ``Library.find``; floor: counting the matches in SQL;
  each also as the command ``phototagger query`` (a new process: start-up included);
- recording 10,000 new predictions (top-5 each) through the scan's own record stage
  (``Recorder.batch``), in its batches of 32 with a commit each; floor: the same rows
  inserted in one statement;
- ``EXPLAIN ANALYZE`` of the statements those issued (PostgreSQL).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import event, func, insert, select, text

from phototagger import config
from phototagger.decision import Evidence
from phototagger.imaging import ImageFacts
from phototagger.index import Library
from phototagger.index import tables as orm
from phototagger.model import LandmarkModel
from phototagger.scan.changes import Work, plan_changes
from phototagger.scan.decode import Decoded
from phototagger.scan.infer import Answer
from phototagger.scan.item import ScanItem
from phototagger.scan.pipeline import Scanner, ScanOptions, ScanSummary
from phototagger.scan.record import Recorder
from phototagger.scan.walk import FoundFile

ROOT = "/library"
PER_FOLDER = 1000
TOP_K = 5


def photo_path(index: int) -> str:
    """Folders of a thousand, grouped by year and month as cameras and phones name them."""
    folder = index // PER_FOLDER
    return f"{ROOT}/{2000 + folder // 12 % 30}/{folder % 12 + 1:02d}-{folder}/IMG_{index:07d}.jpg"


class Synthetic:
    """The library's rows, each consistent with what the shipped policy decides of its best
    guess (so an unchanged library is unchanged): a tenth tagged, a tenth suggested, the rest
    below the threshold, a third of those with camera GPS."""

    def __init__(self, model: LandmarkModel, model_pk: int):
        self.slugs = [landmark.slug for landmark in model.classes]
        self.model_pk = model_pk

    @staticmethod
    def stat(index: int) -> tuple[int, int]:
        return 2_000_000 + index * 7 % 3_000_000, 1_600_000_000_000_000_000 + index * 1_000_003

    def slug(self, index: int) -> str:
        return self.slugs[index * 31 % len(self.slugs)]

    def photos(self, count: int) -> Iterator[tuple]:
        now = datetime.now(UTC)
        for index in range(count):
            kind, slug = index % 10, self.slug(index)
            tagged, suggested = kind == 0, kind == 1
            gps = (index % 120 - 60.0, index % 360 - 180.0) if kind > 1 and index % 3 == 0 \
                else (None, None)
            yield (index + 1, photo_path(index), *self.stat(index), f"{index:016x}", "JPEG",
                   4000, 3000, 0.3, "ok", slug if tagged else None, 0.999 if tagged else None,
                   "auto" if tagged else None, slug if suggested else None,
                   "verified" if tagged else "unsure" if suggested else "below_threshold",
                   self.model_pk if tagged else None, *gps, now, now)

    def predictions(self, count: int) -> Iterator[tuple]:
        now = datetime.now(UTC)
        for index in range(count):
            best = {0: 0.999, 1: 0.7}.get(index % 10, 0.3)
            for rank in range(TOP_K):
                slug = self.slug(index + rank)
                yield (index + 1, self.model_pk, rank, slug, best if rank == 0 else 0.0002,
                       0.8, 0.4, now)


    def writes(self, count: int) -> Iterator[tuple]:
        """What a tagging scan recorded writing into the tagged photos."""
        now = datetime.now(UTC)
        for index in range(0, count, 10):
            yield index + 1, photo_path(index), "embed", self.slug(index), True, now


PHOTO_COLUMNS = ("id", "path", "size", "mtime_ns", "content_hash", "format", "width", "height",
                 "detail", "status", "landmark_slug", "confidence", "tag_state", "suggested_slug",
                 "decision", "model_pk", "camera_latitude", "camera_longitude", "first_seen",
                 "last_seen")
PREDICTION_COLUMNS = ("photo_id", "model_pk", "rank", "slug", "probability", "similarity",
                      "ordinary", "created")
WRITE_COLUMNS = ("photo_id", "target", "mode", "slug", "gps_written", "written")


def bulk_load(library: Library, table: str, columns: tuple[str, ...], rows: Iterator[tuple]
              ) -> None:
    """COPY on PostgreSQL (what a real bulk load would use), batched inserts elsewhere."""
    engine = library.engine
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            with raw.cursor() as cursor, cursor.copy(
                    f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            raw.commit()
        finally:
            raw.close()
        return
    target = orm.Base.metadata.tables[table]
    chunk: list[dict] = []
    with engine.begin() as connection:
        for row in rows:
            chunk.append(dict(zip(columns, row, strict=True)))
            if len(chunk) == 50_000:
                connection.execute(insert(target), chunk)
                chunk.clear()
        if chunk:
            connection.execute(insert(target), chunk)


@contextmanager
def statements(library: Library) -> Iterator[list[tuple[str, object]]]:
    """The SQL statements (with their parameters) the code inside issues."""
    seen: list[tuple[str, object]] = []

    def remember(_conn, _cursor, statement, parameters, _context, _many) -> None:
        seen.append((statement, parameters))

    event.listen(library.engine, "before_cursor_execute", remember)
    try:
        yield seen
    finally:
        event.remove(library.engine, "before_cursor_execute", remember)


def timed(function: Callable[[], object], repeats: int = 3) -> tuple[float, object]:
    """Median seconds of ``repeats`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def explain(library: Library, seen: list[tuple[str, object]], limit: int = 3) -> None:
    if library.engine.dialect.name != "postgresql":
        return
    raw = library.engine.raw_connection()
    try:
        with raw.cursor() as cursor:
            for statement, parameters in [s for s in seen if s[0].lstrip().upper()
                                          .startswith("SELECT")][:limit]:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS OFF) " + statement, parameters)
                print("    " + statement.split("\n")[0][:110].strip() + " ...")
                for (line,) in cursor.fetchall()[:12]:
                    print("      " + line)
        raw.rollback()
    finally:
        raw.close()


def change_detection(library: Library, scanner: Scanner, synthetic: Synthetic, count: int,
                     model_pk: int) -> None:
    found = [FoundFile(photo_path(i), *synthetic.stat(i)) for i in range(count)]

    def detect():
        with library.session() as session:
            known = library.known_photos(session, [Path(ROOT)], model_pk)
            return plan_changes(found, known, False, scanner._rule, writing=True)

    def floor():
        with library.session() as session:
            return len(session.execute(
                select(orm.Photo.path, orm.Photo.size, orm.Photo.mtime_ns)).all())

    with statements(library) as seen:
        seconds, plan = timed(detect, repeats=2)
    floor_seconds, rows = timed(floor, repeats=2)
    print(f"change detection of {count:,} unchanged files: {seconds:.1f} s "
          f"({plan.unchanged:,} unchanged, {len(plan.work):,} to predict); "
          f"floor (path, size, mtime of {rows:,} rows): {floor_seconds:.1f} s, "
          f"{seconds / floor_seconds:.1f}x")
    explain(library, seen)


def queries(library: Library, url: str, model: LandmarkModel) -> None:
    landmark = model.classes[0]
    folder = photo_path(123_456 % max(1, library_size(library)))
    folder = folder.rsplit("/", 1)[0]
    cases = [
        (f"--landmark {landmark.name!r}", dict(landmark=landmark.name),
         ["--landmark", landmark.name]),
        (f"--landmark {landmark.name!r} --limit 100", dict(landmark=landmark.name, limit=100),
         ["--landmark", landmark.name, "--limit", "100"]),
        (f"--under {folder}", dict(under=folder, state="all"),
         ["--under", folder, "--state", "all"]),
        ("--suggested --limit 100", dict(state="suggested", limit=100),
         ["--suggested", "--limit", "100"]),
    ]
    for label, filters, arguments in cases:
        def find(filters=filters):
            with library.session() as session:
                return len(library.find(session, **filters))

        with statements(library) as seen:
            seconds, found = timed(find)
        command = [str(Path(sys.executable).with_name("phototagger")), "query", "--db", url,
                   "--format", "paths", *arguments]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        command_seconds = time.perf_counter() - started
        if done.returncode not in (0, 1):
            print(f"  query {label}: the command failed: {done.stderr.strip()[-200:]}")
        print(f"query {label}: {found:,} photos in {seconds * 1000:.0f} ms in process; "
              f"as a command {command_seconds:.2f} s")
        explain(library, seen, limit=2)


def library_size(library: Library) -> int:
    with library.session() as session:
        return session.scalar(select(func.count()).select_from(orm.Photo))


def recording(library: Library, scanner: Scanner, model: LandmarkModel, start: int,
              count: int) -> None:
    facts = ImageFacts("JPEG", 4000, 3000, None, 0.3)
    guesses = [Evidence(landmark, 0.2, 0.5, 0.4) for landmark in model.classes[:TOP_K]]
    work = [Work(photo_path(start + i), 3_000_000, 1, "new") for i in range(count)]
    summary = ScanSummary()
    started = time.perf_counter()
    with library.session() as session:
        model_row = library.ensure_model(session, model)
        recorder = Recorder(library, model, model_row, scanner.policy, scanner.options, summary)
        for first in range(0, count, 32):
            batch = [ScanItem(work[i], Decoded(i, work[i].path, f"new{i:012x}", facts),
                              Answer(guesses, None))
                     for i in range(first, min(first + 32, count))]
            recorder.batch(session, batch)
            session.commit()
    seconds = time.perf_counter() - started

    rows = [dict(photo_id=i, model_pk=model_row.id, rank=9, slug=guesses[0].landmark.slug,
                 probability=0.1, similarity=0.5, ordinary=0.4)
            for i in range(1, count * TOP_K + 1)]
    started = time.perf_counter()
    with library.engine.begin() as connection:
        connection.execute(insert(orm.Prediction), rows)
    floor = time.perf_counter() - started
    with library.engine.begin() as connection:
        connection.execute(text("DELETE FROM predictions WHERE rank = 9"))
    print(f"recording {count:,} new photos with their top-{TOP_K} predictions: {seconds:.1f} s, "
          f"{count / seconds:,.0f} photos/s; floor ({len(rows):,} prediction rows in one insert): "
          f"{floor:.2f} s, {len(rows) / floor:,.0f} rows/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="An empty database: URL or SQLite file.")
    parser.add_argument("--photos", type=int, default=1_000_000)
    parser.add_argument("--record", type=int, default=10_000)
    args = parser.parse_args()

    library = Library(config.db_url(args.db))
    model = LandmarkModel.load(config.DEFAULT_MODEL, "cpu")  # metadata only: no network here
    with library.session() as session:
        if session.scalar(select(func.count()).select_from(orm.Photo)):
            sys.exit(f"{library.shown_url} is not empty: give an empty database")
        model_pk = library.ensure_model(session, model).id
        library.ensure_landmarks(session, model.classes)
        library.add_roots(session, [Path(ROOT)])
        session.commit()
    synthetic = Synthetic(model, model_pk)
    started = time.perf_counter()
    bulk_load(library, "photos", PHOTO_COLUMNS, synthetic.photos(args.photos))
    bulk_load(library, "predictions", PREDICTION_COLUMNS, synthetic.predictions(args.photos))
    bulk_load(library, "writes", WRITE_COLUMNS, synthetic.writes(args.photos))
    if library.engine.dialect.name == "postgresql":
        with library.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            for table in ("photos", "predictions", "writes"):
                c.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                               f"(SELECT max(id) FROM {table}))"))
            c.execute(text("VACUUM ANALYZE"))
    print(f"{library.engine.dialect.name}: {args.photos:,} photos and "
          f"{args.photos * TOP_K:,} predictions loaded in {time.perf_counter() - started:.0f} s")
    with library.engine.connect() as connection:
        if library.engine.dialect.name == "postgresql":
            size = connection.scalar(text("SELECT pg_database_size(current_database())"))
            print(f"index size: {size / 2**30:.2f} GiB, {size / args.photos:,.0f} bytes a photo")

    scanner = Scanner(library, model, ScanOptions(write="none", progress=False))
    change_detection(library, scanner, synthetic, args.photos, model_pk)
    queries(library, args.db, model)
    recording(library, scanner, model, args.photos, args.record)


if __name__ == "__main__":
    main()
