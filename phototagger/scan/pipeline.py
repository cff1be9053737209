"""The scan: plan -> decode -> infer -> decide -> record -> write, data moving one way.

The plan (walk and change detection), decide, record and write run here, on the driver, in
one index session; an engine runs decode and infer, in this process or on a Ray cluster,
with the same stage code. Every stage reports failures as values; one bad file costs one line
in the summary, never the batch or the run. Work is committed batch by batch, so an
interrupted scan keeps what it did.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session
from tqdm import tqdm

from phototagger.decision import Evidence, Facts, Outcome, Policy, decide
from phototagger.errors import ConfigError
from phototagger.filetags import WRITE_MODES
from phototagger.index import BestGuess, Library
from phototagger.index import tables as orm
from phototagger.landmarks import Landmark
from phototagger.location import estimate_library
from phototagger.model import LandmarkModel
from phototagger.scan.changes import Plan, Work, plan_changes
from phototagger.scan.engines import check_engine, make_engine
from phototagger.scan.infer import Inference
from phototagger.scan.item import ScanItem
from phototagger.scan.options import ScanOptions
from phototagger.scan.record import Recorder
from phototagger.scan.summary import ScanSummary
from phototagger.scan.walk import walk
from phototagger.scan.write import TagWriter
from phototagger.vocabulary import Vocabulary

__all__ = ["Scanner", "ScanOptions", "ScanSummary"]

log = logging.getLogger("phototagger.scan")


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
        check_engine(self.options)
        self._stop = threading.Event()
        #: The landmarks the index learned (phototagger.vocabulary), read as a run starts.
        self.vocabulary = Vocabulary([])

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
            recorder = Recorder(self.library, self.model, model_row, self.policy, self.options,
                                summary)
            run = orm.Run(
                model_pk=model_row.id,
                roots=[os.fspath(r) for r in roots],
                options=asdict(self.options) | {"threshold": self.policy.threshold},
            )
            session.add(run)
            plan = self._plan(session, roots, model_row)
            self._count(plan, summary)
            self._remove_abandoned(plan.abandoned)
            recorder.plan(session, plan)
            self._commit(session)
            if self._stop.is_set() and plan.work:
                summary.interrupted = True
            else:
                self._predict(session, plan.work, recorder)
                if recorder.embedded and self.model.network_id is not None:
                    summary.placed_from_library = estimate_library(
                        session, self.model.network_id, recorder.embedded)
            summary.seconds = time.monotonic() - started
            run.finished = datetime.now(UTC)
            run.summary = summary.to_dict()
            self._commit(session)
            if self.options.dry_run:
                session.rollback()
        self._stop.clear()  # a Scanner can run again
        return summary

    def _plan(self, session: Session, roots: list[Path], model_row: orm.Model) -> Plan:
        """The plan stage: walk the roots and compare what is there with the index."""
        self.library.add_roots(session, [r if r.is_dir() else r.parent for r in roots])
        known = self.library.known_photos(session, roots, model_row.id)
        writing = self.options.write != "none"  # a dry run shows what a real one would do
        found = walk(roots, self.options.excludes, library=self.library.root_folders(session),
                     follow_links=self.options.follow_links)
        plan = plan_changes(found, known, self.options.force, self._rule, writing)
        # What a followed link leads to is library too: the app serves and tags it.
        self.library.add_roots(session, [Path(link.target) for link in plan.outside
                                         if link.followed])
        return plan

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

    def _predict(self, session: Session, work: list[Work], recorder: Recorder) -> None:
        """Decode and infer (the engine), then decide, record and write, batch by batch."""
        if not work:
            return
        items = [ScanItem(job) for job in work]
        inference = Inference(self.model, self.vocabulary, self.options.top_k,
                              self.options.batch_size)
        engine = make_engine(inference, self.options, self._stop)
        progress = tqdm(
            total=len(work), unit="photo", disable=not self.options.progress, leave=False
        )
        writer = TagWriter(self.options.write, self.options.preserve_mtime, recorder.summary,
                           self._commit)
        with progress, writer, contextlib.closing(engine.run(items)) as batches:
            done = 0
            for batch in batches:
                to_write = recorder.batch(session, batch)
                self._commit(session)  # predictions reach the index before any file changes
                writer.submit(to_write)
                writer.record(session)
                progress.update(len(batch))
                done += len(batch)
                if self._stop.is_set() and done < len(work):
                    recorder.summary.interrupted = True
                    break
            writer.record(session, wait=True)

    def _rule(
        self, best: BestGuess, camera: tuple[float, float] | None, detail: float | None
    ) -> Outcome:
        """Change detection's view of a recorded best guess: the same decision, from the index."""
        landmark = (self.model.landmark(best.slug) or self.vocabulary.landmark(best.slug)
                    or Landmark(best.slug, best.slug))
        evidence = Evidence(landmark, best.probability, best.similarity, best.ordinary)
        return decide(evidence, Facts(detail, camera), self.policy).outcome

