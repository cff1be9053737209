"""The scan: walk -> changes -> DataLoader -> model -> index -> tag writer, one way.

Every stage reports failures as values; one bad file costs one line in the summary, never the
batch or the run. Work is committed batch by batch, so an interrupted scan keeps what it did.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import delete
from sqlalchemy.orm import Session
from tqdm import tqdm

from phototagger import tags
from phototagger.errors import ConfigError, TagWriteError
from phototagger.index import Library, path_key
from phototagger.index import models as orm
from phototagger.model import LandmarkModel
from phototagger.scan.changes import Plan, Work, file_hash, plan_changes

if TYPE_CHECKING:
    from phototagger.scan.dataset import Decoded
from phototagger.scan.walk import walk

log = logging.getLogger("phototagger.scan")
WRITE_MODES = ("embed", "sidecar", "none")


@dataclass
class ScanOptions:
    batch_size: int = 32
    workers: int = 2
    threshold: float | None = None  # None: the model's own recommended threshold
    write: str = "embed"
    dry_run: bool = False
    force: bool = False
    excludes: tuple[str, ...] = ()
    progress: bool = False
    wait: float = 0
    top_k: int = 5
    preserve_mtime: bool = False


@dataclass
class ScanSummary:
    found: int = 0
    new: int = 0
    changed: int = 0
    moved: int = 0
    unchanged: int = 0
    new_model: int = 0
    skipped: int = 0
    missing: int = 0
    tagged: int = 0
    below_threshold: int = 0
    kept_by_person: int = 0
    untagged: int = 0
    predicted: int = 0
    failed: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    dry_run: bool = False

    @property
    def images_per_second(self) -> float:
        return self.predicted / self.seconds if self.seconds else 0.0

    def fail(self, path: str, reason: str) -> None:
        log.warning("%s: %s", path, reason)
        self.failed.append({"path": path, "reason": reason})

    def to_dict(self) -> dict:
        data = asdict(self)
        data["images_per_second"] = round(self.images_per_second, 2)
        data["seconds"] = round(self.seconds, 3)
        return data


class Scanner:
    """Scans folders into a library with one model; usable without the CLI."""

    def __init__(self, library: Library, model: LandmarkModel, options: ScanOptions | None = None):
        self.library = library
        self.model = model
        self.options = options or ScanOptions()
        if self.options.write not in WRITE_MODES:
            raise ConfigError(f"unknown write mode {self.options.write!r}")
        threshold = self.options.threshold
        self.threshold = model.threshold if threshold is None else threshold
        if not 0 <= self.threshold <= 1:
            raise ConfigError(f"threshold must lie between 0 and 1, not {self.threshold}")

    def run(self, roots: Sequence[str | os.PathLike]) -> ScanSummary:
        started = time.monotonic()
        roots = [Path(os.path.abspath(root)) for root in roots]
        for root in roots:
            if not root.exists():
                raise ConfigError(f"no such file or folder: {root}")
        summary = ScanSummary(dry_run=self.options.dry_run)
        with self.library.lock(self.options.wait), self.library.session() as session:
            model_row = self.library.ensure_model(session, self.model)
            run = orm.Run(
                model_pk=model_row.id,
                roots=[os.fspath(r) for r in roots],
                options=asdict(self.options) | {"threshold": self.threshold},
            )
            session.add(run)
            self.library.add_roots(session, [r if r.is_dir() else r.parent for r in roots])
            known = self.library.known_photos(session, roots, model_row.id)
            plan = plan_changes(walk(roots, self.options.excludes), known, self.options.force)
            self._count(plan, summary)
            self._apply_moves_and_losses(session, plan)
            self._commit(session)
            self._predict(session, plan.work, model_row, summary)
            summary.seconds = time.monotonic() - started
            run.finished = datetime.now(UTC)
            run.summary = summary.to_dict()
            self._commit(session)
            if self.options.dry_run:
                session.rollback()
        return summary

    def _commit(self, session: Session) -> None:
        if self.options.dry_run:
            session.flush()
        else:
            session.commit()

    def _count(self, plan: Plan, summary: ScanSummary) -> None:
        summary.found = plan.found
        summary.new = plan.count("new")
        summary.changed = plan.count("changed") + plan.count("forced")
        summary.new_model = plan.count("new-model")
        summary.moved = len(plan.moves)
        summary.unchanged = plan.unchanged
        summary.skipped = len(plan.skipped)
        summary.missing = len(plan.missing)
        for problem in plan.problems:
            summary.fail(problem.path, problem.reason)

    def _apply_moves_and_losses(self, session: Session, plan: Plan) -> None:
        now = datetime.now(UTC)
        for move in plan.moves:
            photo = session.get(orm.Photo, move.photo_id)
            text, raw = path_key(move.found.path)
            photo.path, photo.path_bytes = text, raw
            photo.size, photo.mtime_ns = move.found.size, move.found.mtime_ns
            photo.status, photo.last_seen = "ok", now
            log.info("moved: %s -> %s", move.old_path, move.found.path)
        for photo_id in plan.missing:
            session.get(orm.Photo, photo_id).status = "missing"
        for problem in plan.problems:
            if os.path.isdir(problem.path):
                continue  # a folder is not a photo: the summary names it
            photo = self.library.photo_for_update(session, problem.path)
            photo.status, photo.error, photo.last_seen = "failed", problem.reason, now

    def _predict(
        self, session: Session, work: list[Work], model_row: orm.Model, summary: ScanSummary
    ) -> None:
        if not work:
            return
        import torch  # only now: an unchanged library is rescanned without loading torch

        from phototagger.scan.dataset import make_loader

        loader = make_loader(
            [item.path for item in work],
            self.model.preprocess,
            batch_size=self.options.batch_size,
            workers=self.options.workers,
            pin_memory=self.model.device.type == "cuda",
        )
        progress = tqdm(
            total=len(work), unit="photo", disable=not self.options.progress, leave=False
        )
        with progress:
            for batch in loader:
                decoded = [item for item in batch.items if item.error is None]
                probabilities = (
                    self.model.probabilities(batch.inputs) if decoded else torch.empty(0)
                )
                ranked = self.model.top_k(probabilities, self.options.top_k) if decoded else []
                answers = dict(zip((item.index for item in decoded), ranked, strict=True))
                for item in batch.items:
                    job = work[item.index]
                    if item.error is not None:
                        self._record_failure(session, job, item, summary)
                    else:
                        self._record(session, job, item, answers[item.index], model_row, summary)
                self._commit(session)
                progress.update(len(batch.items))

    def _record_failure(
        self, session: Session, job: Work, item: Decoded, summary: ScanSummary
    ) -> None:
        photo = self.library.photo_for_update(session, job.path)
        photo.size, photo.mtime_ns = job.size, job.mtime_ns
        photo.content_hash = item.content_hash
        photo.status, photo.error = "failed", item.error
        photo.last_seen = datetime.now(UTC)
        summary.fail(job.path, item.error)

    def _record(
        self,
        session: Session,
        job: Work,
        item: Decoded,
        ranked: list,
        model_row: orm.Model,
        summary: ScanSummary,
    ) -> None:
        photo = self.library.photo_for_update(session, job.path)
        facts = item.facts
        photo.size, photo.mtime_ns, photo.content_hash = job.size, job.mtime_ns, item.content_hash
        photo.format, photo.width, photo.height = facts.format, facts.width, facts.height
        photo.taken_at = facts.taken_at
        photo.camera_latitude, photo.camera_longitude = facts.camera_gps or (None, None)
        photo.status, photo.error, photo.last_seen = "ok", None, datetime.now(UTC)
        session.flush()
        session.execute(
            delete(orm.Prediction).where(
                orm.Prediction.photo_id == photo.id, orm.Prediction.model_pk == model_row.id
            )
        )
        session.add_all(
            orm.Prediction(
                photo_id=photo.id,
                model_pk=model_row.id,
                rank=rank,
                slug=landmark.slug,
                probability=p,
            )
            for rank, (landmark, p) in enumerate(ranked)
        )
        summary.predicted += 1
        best, confidence = ranked[0]
        if photo.tag_state in ("confirmed", "removed"):
            summary.kept_by_person += 1
            return
        if confidence < self.threshold:
            summary.below_threshold += 1
            if photo.tag_state == "auto":
                self._take_back(session, photo, summary)
            return
        photo.landmark_slug, photo.confidence = best.slug, confidence
        photo.tag_state, photo.model_pk = "auto", model_row.id
        summary.tagged += 1
        if self.options.write == "none" or self.options.dry_run:
            return
        request = tags.TagRequest(
            landmark=best,
            confidence=confidence,
            source="model",
            model=self.model.model_id,
            top_k=[(landmark.name, p) for landmark, p in ranked],
            tagged_at=datetime.now(UTC),
        )
        write_file_tags(
            session, photo, request, self.options.write, self.options.preserve_mtime, summary
        )

    def _take_back(self, session: Session, photo: orm.Photo, summary: ScanSummary) -> None:
        """The model no longer vouches for an automatic tag: a wrong tag is worse than none."""
        photo.landmark_slug = photo.confidence = photo.tag_state = photo.model_pk = None
        if self.options.write == "none" or self.options.dry_run:
            return
        try:
            tags.remove_tags(photo.fs_path)
        except TagWriteError as error:
            summary.fail(photo.fs_path, f"old tag not removed: {error}")
            return
        session.execute(delete(orm.Write).where(orm.Write.photo_id == photo.id))
        _restat(photo)
        summary.untagged += 1


def write_file_tags(
    session: Session,
    photo: orm.Photo,
    request: tags.TagRequest,
    mode: str,
    preserve_mtime: bool,
    summary: ScanSummary | None = None,
) -> tags.WriteResult | None:
    """Write one photo's tags and record the write; a refused write is reported, not raised."""
    try:
        result = tags.write_tags(photo.fs_path, request, mode=mode, preserve_mtime=preserve_mtime)
    except TagWriteError as error:
        if summary is None:
            raise
        summary.fail(photo.fs_path, f"tags not written: {error}")
        return None
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
    _restat(photo)
    return result


def _restat(photo: orm.Photo) -> None:
    """After phototagger changed a file, remember the new file so the next scan skips it."""
    try:
        info = os.stat(photo.fs_path)
        photo.size, photo.mtime_ns = info.st_size, info.st_mtime_ns
        photo.content_hash = file_hash(photo.fs_path)
    except OSError:
        pass
