"""The record stage: what the plan found and what was decided go into the index.

Everything here runs on the driver, in the scan's one session: stages elsewhere (DataLoader
workers, Ray tasks and actors) never touch the index.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import delete, insert
from sqlalchemy.orm import Session

from phototagger import tags
from phototagger.decision import Facts, Outcome, Policy, Reason, decide
from phototagger.errors import TagWriteError
from phototagger.filetags import remove_photo_tags
from phototagger.index import Library, path_key
from phototagger.index import tables as orm
from phototagger.model import LandmarkModel
from phototagger.scan.changes import Plan
from phototagger.scan.item import ScanItem
from phototagger.scan.options import ScanOptions
from phototagger.scan.summary import ScanSummary
from phototagger.tags.sidecar import sidecar_path

log = logging.getLogger("phototagger.scan")

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


class Recorder:
    """Records one scan's plan and batches into the index, and counts them in its summary."""

    def __init__(self, library: Library, model: LandmarkModel, model_row: orm.Model,
                 policy: Policy, options: ScanOptions, summary: ScanSummary):
        self.library = library
        self.model = model
        self.model_row = model_row
        self.policy = policy
        self.options = options
        self.summary = summary
        #: Ids of the photos this scan embedded: those whose position it estimates.
        self.embedded: list[int] = []

    # -- the plan ------------------------------------------------------------------------

    def plan(self, session: Session, plan: Plan) -> None:
        """Moves, photos gone missing or found again, and files the walk could not read."""
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
        (``NAME.ext.xmp``) is moved beside it. Where that cannot be done (another sidecar is
        there already, another file system, one without hard links), phototagger's entries
        leave the old sidecar and the next scan writes them at the new place.
        """
        old_sidecar = sidecar_path(Path(old_path))
        for write in photo.writes:
            if write.target == path_key(old_path)[0]:
                write.target = path_key(new_path)[0]
            elif write.target == path_key(old_sidecar)[0] and not self.options.dry_run:
                new_sidecar = sidecar_path(Path(new_path))
                try:
                    # A link, then the old name's removal: unlike a rename it cannot replace
                    # a sidecar that appears at the new place meanwhile (it fails instead).
                    os.link(old_sidecar, new_sidecar)
                    os.unlink(old_sidecar)
                    write.target = path_key(new_sidecar)[0]
                except OSError as error:
                    log.warning("%s: sidecar not moved along (%s)", old_sidecar, error)
                    with contextlib.suppress(TagWriteError):
                        tags.remove_tags(old_path)  # only phototagger's entries, by name
                    photo.write_error = f"sidecar not moved along: {error}"

    # -- a batch ---------------------------------------------------------------------------

    def batch(self, session: Session, items: Sequence[ScanItem]) -> list[ScanItem]:
        """Put a batch's photos, decisions and predictions in the index; those to write.

        The decide stage runs here, between what decoding found and what is recorded: its
        facts include a person's decision, which a file's own tag can add. One flush and two
        statements for the whole batch's predictions (two more for its embeddings): row by
        row, the ORM took ~16 ms a photo here, a third of what decoding a 12 MP JPEG takes.
        """
        to_write, predicted = [], []
        with session.no_autoflush:  # each photo's lookup would flush the one before
            photos = self.library.photos_for_update(
                session, [item.path for item in items if item.decoded.error is None])
            for item in items:
                if item.decoded.error is not None:
                    self._failure(session, item)
                    continue
                photo = photos[item.path]
                predicted.append((photo, photo.id is None, item))
                self._facts(session, photo, item)
                facts = item.decoded.facts
                item.decision = decide(
                    item.answer.ranked[0],
                    Facts(facts.detail, item.decoded.camera_gps, photo.tag_state),
                    self.policy,
                )
                item.request = self._outcome(session, photo, item)
                if item.request is not None:
                    to_write.append((photo, item))
        session.flush()  # new photos get their ids
        for photo, _, item in predicted:
            item.photo_id = photo.id
        self._predictions(session, predicted)
        return [item for _, item in to_write]

    def _predictions(self, session: Session, predicted: list) -> None:
        """Each photo's top-k and embedding, replacing this model's earlier ones."""
        network = self.model.network_id
        replaced = [photo.id for photo, is_new, _ in predicted if not is_new]
        if replaced:
            session.execute(
                delete(orm.Prediction).where(
                    orm.Prediction.photo_id.in_(replaced),
                    orm.Prediction.model_pk == self.model_row.id,
                )
            )
            for photo, is_new, _ in predicted:
                if not is_new:
                    session.expire(photo, ["predictions"])
            session.execute(
                delete(orm.Embedding).where(
                    orm.Embedding.photo_id.in_(replaced), orm.Embedding.network == network
                )
            )
        rows = [
            {"photo_id": item.photo_id, "model_pk": self.model_row.id, "rank": rank,
             "slug": candidate.landmark.slug, "probability": candidate.probability,
             "similarity": candidate.similarity, "ordinary": candidate.ordinary}
            for _, _, item in predicted
            for rank, candidate in enumerate(item.answer.ranked)
        ]
        if rows:
            session.execute(insert(orm.Prediction), rows)
        vectors = [
            {"photo_id": item.photo_id, "network": network, "vector": item.answer.vector}
            for _, _, item in predicted
            if item.answer.vector is not None
        ]
        if vectors:
            session.execute(insert(orm.Embedding), vectors)
            self.embedded.extend(row["photo_id"] for row in vectors)

    def _failure(self, session: Session, item: ScanItem) -> None:
        photo = self.library.photo_for_update(session, item.path)
        photo.size, photo.mtime_ns = item.work.size, item.work.mtime_ns
        photo.content_hash = item.decoded.content_hash
        photo.status, photo.error = "failed", item.decoded.error
        photo.last_seen = datetime.now(UTC)
        self.summary.fail(item.path, item.decoded.error)

    def _facts(self, session: Session, photo: orm.Photo, item: ScanItem) -> None:
        """What decoding found; a tag the file holds that this index does not know."""
        decoded, facts = item.decoded, item.decoded.facts
        photo.size, photo.mtime_ns = item.work.size, item.work.mtime_ns
        photo.content_hash = decoded.content_hash
        photo.format, photo.width, photo.height = facts.format, facts.width, facts.height
        photo.taken_at, photo.detail = facts.taken_at, facts.detail
        photo.camera_latitude, photo.camera_longitude = decoded.camera_gps or (None, None)
        photo.status, photo.error, photo.last_seen = "ok", None, datetime.now(UTC)
        self.summary.predicted += 1
        found = decoded.file_tag
        if found and found.source == "person" and photo.tag_state not in ("confirmed", "removed"):
            self._adopt_person_tag(session, photo, found)
        elif found and found.source == "model" and not photo.writes:
            # Written through another (or a lost) index: this one learns that the file holds
            # it, so a scan that writes can take it back, or leave it where it is right.
            photo.writes = [_record_of(found)]

    def _outcome(
        self, session: Session, photo: orm.Photo, item: ScanItem
    ) -> tags.TagRequest | None:
        """Record the decision on the photo's row; the tags to write, if any."""
        decision, summary = item.decision, self.summary
        best = item.answer.ranked[0]
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
                self._take_back(session, photo)
            suggested = decision.outcome is Outcome.SUGGESTED
            photo.suggested_slug = best.landmark.slug if suggested else None
            return None
        photo.suggested_slug = None
        photo.landmark_slug, photo.confidence = best.landmark.slug, best.probability
        photo.tag_state, photo.model_pk = "auto", self.model_row.id
        if self.options.write == "none" or self.options.dry_run:
            summary.tagged += 1
            return None
        if self._already_says(item, photo, best.landmark.slug):
            summary.tagged += 1
            return None
        return tags.TagRequest(
            landmark=best.landmark,
            confidence=best.probability,
            source="model",
            model=self.model.model_id,
            top_k=[(candidate.landmark.name, candidate.probability)
                   for candidate in item.answer.ranked],
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

    def _already_says(self, item: ScanItem, photo: orm.Photo, slug: str) -> bool:
        """Whether an unchanged file already says this landmark, so it is not rewritten.

        After a new model version the index's record of the write suffices; after --force
        the file itself is read, since --force is how lost tags (a deleted sidecar) come back.
        """
        if item.work.reason == "new-model":
            return any(write.slug == slug for write in photo.writes)
        if item.work.reason == "forced":
            found = tags.read_tags(photo.fs_path)
            return found is not None and found.slug == slug
        return False

    def _take_back(self, session: Session, photo: orm.Photo) -> None:
        """The model no longer vouches for an automatic tag: a wrong tag is worse than none."""
        summary = self.summary
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


def _record_of(found: tags.ReadTags) -> orm.Write:
    """The index's record of a tag phototagger's entry in a file or sidecar says it wrote."""
    mode = "sidecar" if found.where.suffix.lower() == ".xmp" else "embed"
    return orm.Write(target=path_key(found.where)[0], mode=mode, slug=found.slug,
                     gps_written=found.gps_written)
