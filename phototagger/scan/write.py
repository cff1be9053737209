"""The write stage: tags into files on writer threads, each finished write into the index.

Writes run on the driver, where the index is, on a few threads: a write spends most of its
time waiting for fsync (file, then folder), so a few keep a fast disk busy while the network
works. The walk yields each real file once (hard and symbolic links included), so no two
threads ever write the same file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.orm import Session

from phototagger.errors import TagWriteError
from phototagger.filetags import FileWrite, record_writes, write_file
from phototagger.index import tables as orm
from phototagger.scan.item import ScanItem
from phototagger.scan.summary import ScanSummary

WRITER_THREADS = 4


@dataclass
class _Pending:
    item: ScanItem
    future: Future[FileWrite]


class TagWriter:
    """Writes on threads; ``record`` puts the finished ones in the index, on the caller's."""

    def __init__(self, mode: str, preserve_mtime: bool, summary: ScanSummary,
                 commit: Callable[[Session], None]):
        self.mode = mode
        self.preserve_mtime = preserve_mtime
        self.summary = summary
        self._commit = commit
        self._pool = ThreadPoolExecutor(WRITER_THREADS, thread_name_prefix="tag-writer")
        self._pending: list[_Pending] = []

    def __enter__(self) -> TagWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True)

    def submit(self, items: Iterable[ScanItem]) -> None:
        """Start writing these items' tags (their predictions are in the index already)."""
        for item in items:
            future = self._pool.submit(write_file, item.path, item.request, self.mode,
                                       self.preserve_mtime)
            self._pending.append(_Pending(item, future))

    def record(self, session: Session, wait: bool = False) -> None:
        """Record the writes that are done (all of them with ``wait``); the rest stay pending.

        One commit for all that finished: a record lost to an interruption only means the next
        scan sees the file changed and tags it again, replacing its own entries.
        """
        done: list[_Pending] = []
        still: list[_Pending] = []
        for pending in self._pending:  # one look at each: one finishing meanwhile waits a round
            (done if wait or pending.future.done() else still).append(pending)
        self._pending = still
        if not done:
            return
        written, failed = [], []
        for pending in done:
            item = pending.item
            try:
                written.append((item.photo_id, item.request, pending.future.result()))
            except TagWriteError as error:
                failed.append({"id": item.photo_id, "write_error": str(error)})
                self.summary.fail(item.path, f"tags not written: {error}")
        record_writes(session, written)
        if failed:
            session.execute(update(orm.Photo), failed)
        self.summary.tagged += len(written)
        self._commit(session)
