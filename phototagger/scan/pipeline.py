"""The scan: walk -> changes -> DataLoader -> model -> index -> tag writer, one way.

Every stage reports failures as values; one bad file costs one line in the summary, never the
batch or the run. Work is committed batch by batch, so an interrupted scan keeps what it did.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import delete, insert, update
from sqlalchemy.orm import Session
from tqdm import tqdm

from phototagger import search, tags
from phototagger.decision import Evidence, Facts, Outcome, Policy, Reason, decide
from phototagger.errors import ConfigError, TagWriteError
from phototagger.filetags import (
    WRITE_MODES,
    FileWrite,
    record_writes,
    remove_photo_tags,
    write_file,
)
from phototagger.index import BestGuess, Library, path_key
from phototagger.index import tables as orm
from phototagger.landmarks import Landmark
from phototagger.location import estimate_library
from phototagger.memory import frozen_heap, retain_freed_memory
from phototagger.model import LandmarkModel
from phototagger.scan.changes import Plan, Work, plan_changes
from phototagger.vocabulary import Vocabulary

if TYPE_CHECKING:
    from phototagger.scan.dataset import Batch, Decoded
from phototagger.scan.walk import walk
from phototagger.tags.sidecar import sidecar_path

log = logging.getLogger("phototagger.scan")
#: One line per failed file, for a log; the summary lists them for people.
failures_log = logging.getLogger("phototagger.scan.failed")


@dataclass
class ScanOptions:
    batch_size: int = 32
    workers: int | None = None  # decoding processes; None: chosen for the machine and device
    threshold: float | None = None  # None: the model's own recommended threshold
    write: str = "embed"
    dry_run: bool = False
    force: bool = False
    excludes: tuple[str, ...] = ()
    progress: bool = False
    wait: float = 0
    top_k: int = 5
    preserve_mtime: bool = False
    #: Write the landmark's position as an estimated GPS position (False: names only).
    estimate_position: bool = True
    #: Follow links out of the library's folders; what they lead to joins the library.
    follow_links: bool = False


@dataclass
class ScanSummary:
    found: int = 0
    new: int = 0
    changed: int = 0
    moved: int = 0
    unchanged: int = 0
    new_model: int = 0
    #: Unchanged, but the last scan could not write their tags: written again.
    retried: int = 0
    #: Unchanged, but this scan's threshold or write mode wants other tags than recorded.
    new_settings: int = 0
    #: Unchanged, predicted again because the scan was asked to (--force).
    forced: int = 0
    skipped: int = 0
    missing: int = 0
    #: Links out of the scanned folders, not followed (--follow-links): not in the library.
    outside_links: int = 0
    tagged: int = 0
    #: Plausible but not verified by the reference photos: in the index for a person.
    suggested: int = 0
    below_threshold: int = 0
    #: Sure enough by the softmax, but the reference photos speak against it.
    not_similar: int = 0
    #: Sure enough, but the camera's own GPS puts it too far away to show that landmark.
    far_from_camera: int = 0
    #: Sure enough, of an image with next to no detail (imaging.MIN_DETAIL): no evidence.
    featureless: int = 0
    kept_by_person: int = 0
    untagged: int = 0
    predicted: int = 0
    #: Of the GPS-less photos this scan predicted, those given a position estimated from the
    #: library's own GPS (phototagger.location).
    placed_from_library: int = 0
    failed: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    dry_run: bool = False
    #: Stopped on request (request_stop) before all work was done; what was done is recorded.
    interrupted: bool = False

    @property
    def images_per_second(self) -> float:
        return self.predicted / self.seconds if self.seconds else 0.0

    def fail(self, path: str, reason: str) -> None:
        reason = reason.replace(f"{path}: ", "", 1)  # errors name their file; once is enough
        failures_log.warning("%s: %s", path, reason)
        self.failed.append({"path": path, "reason": reason})

    def to_dict(self) -> dict:
        data = asdict(self)
        data["images_per_second"] = round(self.images_per_second, 2)
        data["seconds"] = round(self.seconds, 3)
        return data


#: A write spends much of its time waiting for fsync (file, then folder), so a few threads
#: keep a fast disk busy while the model works. The walk yields each real file once (hard and
#: symbolic links included), so no two threads ever write the same file.
WRITER_THREADS = 4


def _cores() -> int:
    """CPUs this process may run on (a container's or taskset's limit, not the machine's)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@dataclass(frozen=True)
class Answer:
    """What the network says of one photo: its top-k landmarks and its stored embedding."""

    ranked: list[Evidence]
    vector: bytes | None  # None: a model file without reference photos makes none


@dataclass
class PendingWrite:
    path: str
    photo_id: int
    request: tags.TagRequest
    future: Future[FileWrite]


class Scanner:
    """Scans folders into a library with one model; usable without the CLI."""

    def __init__(self, library: Library, model: LandmarkModel, options: ScanOptions | None = None):
        self.library = library
        self.model = model
        self.options = options or ScanOptions()
        if self.options.write not in WRITE_MODES:
            raise ConfigError(f"unknown write mode {self.options.write!r}")
        self.policy = Policy.of(model, self.options.threshold)
        if not 0 <= self.policy.threshold <= 1:
            raise ConfigError(f"threshold must lie between 0 and 1, not {self.policy.threshold}")
        self._stop = threading.Event()
        #: The landmarks the index learned (phototagger.vocabulary), read as a run starts.
        self.vocabulary = Vocabulary([])
        #: Ids of the photos this run embedded: those whose position it estimates.
        self._embedded: list[int] = []

    def request_stop(self) -> None:
        """End the scan early and cleanly: the batch in hand is recorded, the tag writes under
        way finish and are recorded, and the next scan goes on from there. Safe to call from a
        signal handler or another thread."""
        self._stop.set()

    def run(self, roots: Sequence[str | os.PathLike]) -> ScanSummary:
        started = time.monotonic()
        for root in roots:
            if not os.path.exists(root):
                raise ConfigError(f"no such file or folder: {os.path.abspath(root)}")
        summary = ScanSummary(dry_run=self.options.dry_run)
        with self.library.lock(self.options.wait), self.library.session() as session:
            roots = [Path(self.library.indexed_path(session, root)) for root in roots]
            model_row = self.library.ensure_model(session, self.model)
            self.vocabulary = Vocabulary.of(self.library, session, self.model)
            run = orm.Run(
                model_pk=model_row.id,
                roots=[os.fspath(r) for r in roots],
                options=asdict(self.options) | {"threshold": self.policy.threshold},
            )
            session.add(run)
            self.library.add_roots(session, [r if r.is_dir() else r.parent for r in roots])
            known = self.library.known_photos(session, roots, model_row.id)
            writing = self.options.write != "none"  # a dry run shows what a real one would do
            found = walk(roots, self.options.excludes, library=self.library.root_folders(session),
                         follow_links=self.options.follow_links)
            plan = plan_changes(found, known, self.options.force, self._rule, writing)
            # What a followed link leads to is library too: the app serves and tags it.
            self.library.add_roots(session, [Path(link.target) for link in plan.outside
                                             if link.followed])
            self._count(plan, summary)
            self._remove_abandoned(plan.abandoned)
            self._apply_moves_and_losses(session, plan)
            self._commit(session)
            if self._stop.is_set() and plan.work:
                summary.interrupted = True
            else:
                self._predict(session, plan.work, model_row, summary)
                if self._embedded and self.model.network_id is not None:
                    summary.placed_from_library = estimate_library(
                        session, self.model.network_id, self._embedded)
            summary.seconds = time.monotonic() - started
            run.finished = datetime.now(UTC)
            run.summary = summary.to_dict()
            self._commit(session)
            if self.options.dry_run:
                session.rollback()
        self._stop.clear()  # a Scanner can run again
        self._embedded = []
        return summary

    def _commit(self, session: Session) -> None:
        if self.options.dry_run:
            session.flush()
        else:
            session.commit()

    def _count(self, plan: Plan, summary: ScanSummary) -> None:
        summary.found = plan.found
        summary.new = plan.count("new")
        summary.changed = plan.count("changed")
        summary.forced = plan.count("forced")
        summary.new_model = plan.count("new-model")
        summary.new_settings = plan.count("new-settings")
        summary.moved = len(plan.moves)
        summary.unchanged = plan.unchanged
        summary.retried = plan.count("retry-write")
        summary.skipped = len(plan.skipped)
        summary.missing = len(plan.missing)
        summary.outside_links = sum(1 for link in plan.outside if not link.followed)
        for problem in plan.problems:
            summary.fail(problem.path, problem.reason)

    def _remove_abandoned(self, paths: list[str]) -> None:
        """Delete the temporary copies that killed writes left (the photos are whole): said
        once, on stderr, since something stopped a scan the hard way. A scan that writes
        nothing (a dry run, --write none) leaves the folders as they are."""
        if self.options.dry_run or self.options.write == "none":
            return
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                log.warning("removed %s: a temporary copy left by a scan that was killed", path)

    def _apply_moves_and_losses(self, session: Session, plan: Plan) -> None:
        now = datetime.now(UTC)
        for move in plan.moves:
            photo = session.get(orm.Photo, move.photo_id)
            text, raw = path_key(move.found.path)
            photo.path, photo.path_bytes = text, raw
            photo.size, photo.mtime_ns = move.found.size, move.found.mtime_ns
            photo.status, photo.last_seen = "ok", now
            self._follow_move(photo, move.old_path, move.found.path)
            log.info("moved: %s -> %s", move.old_path, move.found.path)
        for photo_id in plan.missing:
            session.get(orm.Photo, photo_id).status = "missing"
        for photo_id in plan.found_again:
            session.get(orm.Photo, photo_id).status = "ok"
        for problem in plan.problems:
            if os.path.isdir(problem.path):
                continue  # a folder is not a photo: the summary names it
            photo = self.library.photo_for_update(session, problem.path)
            photo.status, photo.error, photo.last_seen = "failed", problem.reason, now

    def _follow_move(self, photo: orm.Photo, old_path: str, new_path: str) -> None:
        """Point the photo's recorded writes at its new place; carry its sidecar along.

        A photo tagged through a sidecar (HEIC, read-only, ``--write sidecar``) and moved
        without it would lose its tags: the sidecar phototagger names after it
        (``NAME.ext.xmp``) is renamed beside it. Where that cannot be done (another sidecar is
        there already, another file system), phototagger's entries leave the old sidecar and
        the next scan writes them at the new place.
        """
        old_sidecar = sidecar_path(Path(old_path))
        for write in photo.writes:
            if write.target == path_key(old_path)[0]:
                write.target = path_key(new_path)[0]
            elif write.target == path_key(old_sidecar)[0] and not self.options.dry_run:
                new_sidecar = sidecar_path(Path(new_path))
                try:
                    if new_sidecar.exists():
                        raise FileExistsError(f"{new_sidecar} is there already")
                    os.rename(old_sidecar, new_sidecar)
                    write.target = path_key(new_sidecar)[0]
                except OSError as error:
                    log.warning("%s: sidecar not moved along (%s)", old_sidecar, error)
                    with contextlib.suppress(TagWriteError):
                        tags.remove_tags(old_path)  # only phototagger's entries, by name
                    photo.write_error = f"sidecar not moved along: {error}"

    def _predict(
        self, session: Session, work: list[Work], model_row: orm.Model, summary: ScanSummary
    ) -> None:
        if not work:
            return
        import torch  # only now: an unchanged library is rescanned without loading torch

        retain_freed_memory()
        threads = torch.get_num_threads()
        try:
            with frozen_heap():
                self._predict_batches(session, work, model_row, summary, threads)
        finally:
            torch.set_num_threads(threads)

    def _network_threads(self, default: int) -> int:
        """CPU threads for the network: the cores the decoding workers leave, never more.

        Oversubscribed, the network's threads wait on each other at every layer. Measured on
        two cores (120 photos of 12 MP, shipped model, two workers): 16.6 images/s with one
        thread against 14.5 with torch's default of two.
        """
        workers = self._decoding_workers()
        if self.model.device.type != "cpu" or not workers:
            return default
        return min(default, max(1, _cores() - workers))

    def _decoding_workers(self) -> int:
        """The asked-for number, or: on a CPU half the cores (decoding a 12 MP JPEG costs about
        what the network costs; two at least, best on two cores as measured), with CUDA all
        but two (the main thread feeds the GPU and records, the writers need some CPU)."""
        if self.options.workers is not None:
            return self.options.workers
        if self.model.device.type == "cuda":
            return max(2, _cores() - 2)
        return max(2, _cores() // 2)

    def _predict_batches(
        self,
        session: Session,
        work: list[Work],
        model_row: orm.Model,
        summary: ScanSummary,
        all_threads: int,
    ) -> None:
        import torch

        progress = tqdm(
            total=len(work), unit="photo", disable=not self.options.progress, leave=False
        )
        # Tags are written on writer threads while the model works on the next batch; the
        # index is only ever touched from this thread.
        writers = ThreadPoolExecutor(WRITER_THREADS, thread_name_prefix="tag-writer")
        with progress, writers as writer:
            pending: list[PendingWrite] = []
            done = 0
            # On CUDA the network's first call at the scan's batch shape takes seconds (kernel
            # selection): made while the workers decode, not after the first batch arrives.
            size, on_cuda = self.options.batch_size, self.model.device.type == "cuda"
            warm_up = (lambda: self.model.warm_up(size)) if on_cuda else None
            for batch in self._batches([item.path for item in work], while_decoding=warm_up):
                # Once the workers are through, the batches still queued get every core.
                busy = not batch.decoding_done  # again after a worker died and was replaced
                torch.set_num_threads(self._network_threads(all_threads) if busy else all_threads)
                decoded = [item for item in batch.items if item.error is None]
                answers = self._answers(batch, decoded)
                to_write = self._record_batch(session, batch, work, answers, model_row, summary)
                # Predictions reach the index before any file changes.
                self._commit(session)
                for job, photo, request in to_write:
                    future = writer.submit(
                        write_file,
                        job.path,
                        request,
                        self.options.write,
                        self.options.preserve_mtime,
                    )
                    pending.append(PendingWrite(job.path, photo.id, request, future))
                pending = self._record_writes(session, pending, summary, wait=False)
                progress.update(len(batch.items))
                done += len(batch.items)
                if self._stop.is_set() and done < len(work):
                    summary.interrupted = True
                    break
            self._record_writes(session, pending, summary, wait=True)

    def _answers(self, batch: Batch, decoded: list[Decoded]) -> dict[int, Answer]:
        """Each decoded photo's top-k landmarks (a learned one first where it wins) and its
        embedding, by its index in the work."""
        if not decoded:
            return {}
        scores = self.model.scores(batch.inputs, pad_to=self.options.batch_size)
        ranked = self.vocabulary.guesses(self.model.ranked(scores, self.options.top_k),
                                         scores.embeddings)
        vectors = [None] * len(decoded) if scores.embeddings is None \
            else [search.encode(row) for row in scores.embeddings.numpy()]
        return {item.index: Answer(candidates, vector)
                for item, candidates, vector in zip(decoded, ranked, vectors, strict=True)}

    def _record_writes(
        self, session: Session, pending: list[PendingWrite], summary: ScanSummary, wait: bool
    ) -> list[PendingWrite]:
        """Record the writes that are done (all of them with ``wait``); the rest stay pending.

        One commit for all that finished: a record lost to an interruption only means the next
        scan sees the file changed and tags it again, replacing its own entries.
        """
        done: list[PendingWrite] = []
        still: list[PendingWrite] = []
        for item in pending:  # one look at each future: one finishing meanwhile waits a round
            (done if wait or item.future.done() else still).append(item)
        if not done:
            return still
        written, failed = [], []
        for item in done:
            try:
                written.append((item.photo_id, item.request, item.future.result()))
            except TagWriteError as error:
                failed.append({"id": item.photo_id, "write_error": str(error)})
                summary.fail(item.path, f"tags not written: {error}")
        record_writes(session, written)
        if failed:
            session.execute(update(orm.Photo), failed)
        summary.tagged += len(written)
        self._commit(session)
        return still

    def _batches(
        self, paths: list[str], while_decoding: Callable[[], None] | None = None
    ) -> Iterator[Batch]:
        """Decoded batches in file order; a decoder that kills its worker costs one file.

        ``while_decoding`` is called once, as soon as the workers have started on the first
        batches (with no workers, before decoding): work that would otherwise wait for them.

        When a worker process dies (a crash in a native decoder, the OOM killer), the next
        batch's files are decoded again one by one, each in a worker of its own, so the
        culprit is named and everything else is still predicted. When the workers cannot hand
        batches over (shared memory full), the rest is decoded in this process.
        """
        from phototagger.scan.dataset import make_loader

        pin = self.model.device.type == "cuda"
        size = self.options.batch_size
        # A worker decodes whole batches: more workers than batches would only cost start-ups.
        workers = min(self._decoding_workers(), -(-len(paths) // size))
        start = 0
        while start < len(paths):
            loader = make_loader(paths[start:], self.model.preprocess, size, workers, pin)
            batches = iter(loader)  # the workers start decoding here
            if while_decoding is not None:
                while_decoding()
                while_decoding = None
            next_index = start
            try:
                for batch in batches:
                    if batch.unshared is not None:
                        break
                    for item in batch.items:
                        item.index += start
                    batch.decoding_done = not workers or loader.dataset.all_decoded()
                    next_index = batch.items[-1].index + 1
                    yield batch
                else:
                    return
            except RuntimeError as error:
                if not workers:
                    raise
                if self._stop.is_set():  # a SIGTERM to the whole process group got it too
                    return
                log.warning("a decoding worker died (%s); isolating its files", error)
            else:
                log.warning(
                    "decoding workers cannot share their batches (%s): decoding in this process "
                    "from here, more slowly. Give /dev/shm more room (docker run --shm-size=1g) "
                    "or pass --workers 0",
                    batch.unshared,
                )
                del batches  # its workers stop now, not when the garbage collector finds them
                workers, start = 0, next_index
                continue
            end = min(len(paths), next_index + size)
            for index in range(next_index, end):
                yield self._isolated(paths[index], index, pin)
            start = end

    def _isolated(self, path: str, index: int, pin: bool) -> Batch:
        """Decode one file in a worker of its own; if that worker dies too, the file is named."""
        import torch

        from phototagger.scan.dataset import Batch, Decoded, make_loader

        try:
            [batch] = list(make_loader([path], self.model.preprocess, 1, 1, pin))
        except RuntimeError:
            crashed = Decoded(index, path, error="the decoder crashed on this file")
            return Batch(inputs=torch.empty(0), items=[crashed])
        if batch.unshared is not None:  # its worker survived decoding it: safe to do here
            [batch] = list(make_loader([path], self.model.preprocess, 1, 0, pin))
        batch.items[0].index = index
        return batch

    def _record_failure(
        self, session: Session, job: Work, item: Decoded, summary: ScanSummary
    ) -> None:
        photo = self.library.photo_for_update(session, job.path)
        photo.size, photo.mtime_ns = job.size, job.mtime_ns
        photo.content_hash = item.content_hash
        photo.status, photo.error = "failed", item.error
        photo.last_seen = datetime.now(UTC)
        summary.fail(job.path, item.error)

    def _record_batch(
        self,
        session: Session,
        batch: Batch,
        work: list[Work],
        answers: dict[int, Answer],
        model_row: orm.Model,
        summary: ScanSummary,
    ) -> list[tuple[Work, orm.Photo, tags.TagRequest]]:
        """Put a batch's photos and predictions in the index; the tag writes it calls for.

        One flush and two statements for the whole batch's predictions (two more for its
        embeddings): row by row, the ORM took ~16 ms a photo here, a third of what decoding a
        12 MP JPEG takes.
        """
        to_write, predicted = [], []
        with session.no_autoflush:  # each photo's lookup would flush the one before
            photos = self.library.photos_for_update(
                session, [work[item.index].path for item in batch.items if item.error is None])
            for item in batch.items:
                job = work[item.index]
                if item.error is not None:
                    self._record_failure(session, job, item, summary)
                    continue
                photo = photos[job.path]
                answer = answers[item.index]
                predicted.append((photo, photo.id is None, answer))
                request = self._record(session, job, photo, item, answer.ranked, model_row,
                                       summary)
                if request is not None:
                    to_write.append((job, photo, request))
        session.flush()  # new photos get their ids
        replaced = [photo.id for photo, is_new, _ in predicted if not is_new]
        if replaced:
            session.execute(
                delete(orm.Prediction).where(
                    orm.Prediction.photo_id.in_(replaced), orm.Prediction.model_pk == model_row.id
                )
            )
            for photo, is_new, _ in predicted:
                if not is_new:
                    session.expire(photo, ["predictions"])
            session.execute(
                delete(orm.Embedding).where(
                    orm.Embedding.photo_id.in_(replaced),
                    orm.Embedding.network == self.model.network_id,
                )
            )
        rows = [
            {"photo_id": photo.id, "model_pk": model_row.id, "rank": rank,
             "slug": candidate.landmark.slug, "probability": candidate.probability,
             "similarity": candidate.similarity, "ordinary": candidate.ordinary}
            for photo, _, answer in predicted
            for rank, candidate in enumerate(answer.ranked)
        ]
        if rows:
            session.execute(insert(orm.Prediction), rows)
        vectors = [
            {"photo_id": photo.id, "network": self.model.network_id, "vector": answer.vector}
            for photo, _, answer in predicted
            if answer.vector is not None
        ]
        if vectors:
            session.execute(insert(orm.Embedding), vectors)
            self._embedded.extend(row["photo_id"] for row in vectors)
        return to_write

    def _record(
        self,
        session: Session,
        job: Work,
        photo: orm.Photo,
        item: Decoded,
        ranked: list[Evidence],
        model_row: orm.Model,
        summary: ScanSummary,
    ) -> tags.TagRequest | None:
        """Update one photo's row from its decoding and best answer; the tags to write, if any."""
        facts = item.facts
        photo.size, photo.mtime_ns, photo.content_hash = job.size, job.mtime_ns, item.content_hash
        photo.format, photo.width, photo.height = facts.format, facts.width, facts.height
        photo.taken_at, photo.detail = facts.taken_at, facts.detail
        photo.camera_latitude, photo.camera_longitude = item.camera_gps or (None, None)
        photo.status, photo.error, photo.last_seen = "ok", None, datetime.now(UTC)
        summary.predicted += 1
        best = ranked[0]
        found = item.file_tag
        if found and found.source == "person" and photo.tag_state not in ("confirmed", "removed"):
            self._adopt_person_tag(session, photo, found)
        elif found and found.source == "model" and not photo.writes:
            # Written through another (or a lost) index: this one learns that the file holds
            # it, so a scan that writes can take it back, or leave it where it is right.
            photo.writes = [_record_of(found)]
        decision = decide(
            best,
            Facts(facts.detail, item.camera_gps, photo.tag_state),
            self.policy,
        )
        photo.decision, photo.decided_threshold = decision.reason.value, self.policy.threshold
        if decision.reason in (Reason.PERSON, Reason.REMOVED):
            photo.suggested_slug = None
            request = self._persons_tag_to_rewrite(session, photo)
            if request is None:
                summary.kept_by_person += 1
            elif self.options.dry_run:
                summary.tagged += 1  # what the real run would write
                request = None
            return request
        if not decision.tagged:
            field_name = _SUMMARY_FIELD[decision.reason]
            setattr(summary, field_name, getattr(summary, field_name) + 1)
            if photo.tag_state == "auto" or photo.writes:  # in the index, or in the file
                self._take_back(session, photo, summary)
            suggested = decision.outcome is Outcome.SUGGESTED
            photo.suggested_slug = best.landmark.slug if suggested else None
            return None
        photo.suggested_slug = None
        photo.landmark_slug, photo.confidence = best.landmark.slug, best.probability
        photo.tag_state, photo.model_pk = "auto", model_row.id
        if self.options.write == "none" or self.options.dry_run:
            summary.tagged += 1
            return None
        if self._already_says(job, photo, best.landmark.slug):
            summary.tagged += 1
            return None
        return tags.TagRequest(
            landmark=best.landmark,
            confidence=best.probability,
            source="model",
            model=self.model.model_id,
            top_k=[(candidate.landmark.name, candidate.probability) for candidate in ranked],
            estimate_position=self.options.estimate_position,
            tagged_at=datetime.now(UTC),
        )

    def _persons_tag_to_rewrite(
        self, session: Session, photo: orm.Photo
    ) -> tags.TagRequest | None:
        """A person's confirmed landmark that is in the index but not in the file (taken out
        by ``untag --retag`` to move it, or tagged with ``--write none``): written again."""
        if photo.tag_state != "confirmed" or not photo.landmark_slug or photo.writes:
            return None
        landmark = self.library.landmark(session, photo.landmark_slug)
        if landmark is None or self.options.write == "none":
            return None
        return tags.TagRequest.persons(landmark, self.options.estimate_position)

    def _adopt_person_tag(self, session: Session, photo: orm.Photo, found: tags.ReadTags) -> None:
        """A person's tag the file carries but this index does not know (the index was lost,
        or the tag was set through another one): a scan never overwrites a person's decision,
        so the index takes it as confirmed and written, as `phototagger tag` would have."""
        known = session.get(orm.Landmark, found.slug) is not None
        photo.landmark_slug = found.slug if known else None
        photo.confidence = photo.model_pk = None
        photo.tag_state = "confirmed"
        photo.writes = [_record_of(found)]

    def _rule(
        self, best: BestGuess, camera: tuple[float, float] | None, detail: float | None
    ) -> Outcome:
        """Change detection's view of a recorded best guess: the same decision, from the index."""
        landmark = (self.model.landmark(best.slug) or self.vocabulary.landmark(best.slug)
                    or Landmark(best.slug, best.slug))
        evidence = Evidence(landmark, best.probability, best.similarity, best.ordinary)
        return decide(evidence, Facts(detail, camera), self.policy).outcome

    def _already_says(self, job: Work, photo: orm.Photo, slug: str) -> bool:
        """Whether an unchanged file already says this landmark, so it is not rewritten.

        After a new model version the index's record of the write suffices; after --force
        the file itself is read, since --force is how lost tags (a deleted sidecar) come back.
        """
        if job.reason == "new-model":
            return any(write.slug == slug for write in photo.writes)
        if job.reason == "forced":
            found = tags.read_tags(photo.fs_path)
            return found is not None and found.slug == slug
        return False

    def _take_back(self, session: Session, photo: orm.Photo, summary: ScanSummary) -> None:
        """The model no longer vouches for an automatic tag: a wrong tag is worse than none."""
        in_index = photo.tag_state == "auto"
        photo.landmark_slug = photo.confidence = photo.tag_state = photo.model_pk = None
        if self.options.write == "none":
            summary.untagged += in_index  # out of the index; of the file at the next writing
            return
        if self.options.dry_run:
            summary.untagged += 1  # what the real run would do
            return
        try:
            result = remove_photo_tags(session, photo, photo.fs_path)
        except TagWriteError as error:
            summary.fail(photo.fs_path, f"old tag not removed: {error}")
            return
        summary.untagged += 1
        for remainder in result.left:
            summary.fail(photo.fs_path, f"old tag removed, but {remainder}")


#: The summary's count for each reason a photo gets no tag.
_SUMMARY_FIELD = {
    Reason.FEATURELESS: "featureless",
    Reason.FAR_FROM_CAMERA: "far_from_camera",
    Reason.BELOW_THRESHOLD: "below_threshold",
    Reason.UNVERIFIED: "suggested",
    Reason.UNSURE: "suggested",
    Reason.NO_EVIDENCE: "suggested",
    Reason.NOT_SIMILAR: "not_similar",
}


def _record_of(found: tags.ReadTags) -> orm.Write:
    """The index's record of a tag phototagger's entry in a file or sidecar says it wrote."""
    mode = "sidecar" if found.where.suffix.lower() == ".xmp" else "embed"
    return orm.Write(target=path_key(found.where)[0], mode=mode, slug=found.slug,
                     gps_written=found.gps_written)
