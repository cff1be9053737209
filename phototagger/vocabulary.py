"""Landmarks an index learns from a few photos, held to the model's own rules.

``phototagger learn NAME PHOTOS`` keeps the photos' embeddings (the landmark's *gallery*) in
the index, so a PostgreSQL index shares them between machines. From then on every decision
made against that index (scan, predict, the app, the re-decision here) weighs the learned
landmarks beside the model's own:

- a learned landmark's *similarity* to a photo is the cosine to its k-th most alike gallery
  photo, as a model landmark's is to its reference photos (k: one per
  ``PHOTOS_PER_NEIGHBOUR`` gallery photos, at least one, at most the model's own k);
- it becomes the photo's best guess only where it is more alike than every candidate of the
  model is to its own reference photos; its *probability* is a softmax over those
  similarities (``TEMPERATURE``): how clearly it wins against every landmark the photo might
  show;
- :func:`phototagger.decision.decide` then decides that guess with the model's own policy:
  the threshold, the margin over ordinary photos, the tag probability.

No retraining and no decoding of the library: indexed photos are re-decided from the
embeddings the scan stored. Measured in docs/models.md.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from phototagger import search
from phototagger.decision import Evidence, Facts, Outcome, Policy, decide
from phototagger.errors import ConfigError, ImageError
from phototagger.index import Library
from phototagger.index import tables as orm
from phototagger.landmarks import Landmark, fold, new_landmark
from phototagger.model import LandmarkModel
from phototagger.places import ORDINARY_LIMIT

if TYPE_CHECKING:
    import torch

#: The fewest usable photos a landmark is learned from.
MIN_PHOTOS = 5
#: Of the similarity softmax that gives a learned guess its probability. Measured on ten
#: landmarks held out of the model's decision (docs/models.md): 0.03 tags 81-87 % of their
#: other photos right from 5-8 photos and none wrong; 0.06 (the best fit of the model's own
#: validation photos to their galleries) only 64-74 %, as a gallery of 5-8 photos lies
#: farther from a new photo than one of a hundred does.
TEMPERATURE = 0.03
#: Gallery photos per neighbour counted: a landmark learned from 8 photos takes its nearest
#: photo, one learned from 24 its third nearest, as the model's do.
PHOTOS_PER_NEIGHBOUR = 8
#: A gallery photo whose mean similarity to the others is this much below the median photo's
#: is named: probably a wrong photo.
OUTLIER_GAP = 0.15


@dataclass(frozen=True)
class Learned:
    """One learned landmark with its gallery (embeddings, a row each)."""

    landmark: Landmark
    vectors: np.ndarray


class Vocabulary:
    """The landmarks an index learned for one network; those with too few photos wait."""

    def __init__(self, learned: Sequence[Learned], neighbours: int = 3):
        self.learned = [item for item in learned if len(item.vectors) >= MIN_PHOTOS]
        self.neighbours = neighbours
        self._by_slug = {item.landmark.slug: item.landmark for item in learned}

    @classmethod
    def of(cls, library: Library, session: Session, model: LandmarkModel) -> Vocabulary:
        """What this index learned for the model's network (nothing for a format-1 file)."""
        if model.network_id is None:
            return cls([])
        rows = session.execute(
            select(orm.GalleryPhoto.slug, orm.GalleryPhoto.vector)
            .where(orm.GalleryPhoto.network == model.network_id)
            .order_by(orm.GalleryPhoto.slug, orm.GalleryPhoto.id)
        ).all()
        vectors: dict[str, list[bytes]] = {}
        for slug, vector in rows:
            vectors.setdefault(slug, []).append(vector)
        learned = [Learned(library.landmark(session, slug), search.decode(blobs))
                   for slug, blobs in vectors.items()]
        return cls(learned, int(model.evidence.get("neighbours", 3)))

    def __bool__(self) -> bool:
        return bool(self.learned)

    def landmark(self, slug: str) -> Landmark | None:
        return self._by_slug.get(slug)

    def similarities(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``N x learned``: each photo's similarity to each learned landmark's gallery."""
        import torch

        from phototagger.evidence import class_similarity

        out = embeddings.new_zeros(len(embeddings), len(self.learned))
        by_k: dict[int, list[int]] = {}
        for index, item in enumerate(self.learned):
            by_k.setdefault(self._neighbours(len(item.vectors)), []).append(index)
        for k, indices in by_k.items():
            galleries = [torch.from_numpy(self.learned[i].vectors) for i in indices]
            references = torch.cat(galleries)
            width = max(len(g) for g in galleries)
            members, start = [], 0
            for gallery in galleries:
                rows = list(range(start, start + len(gallery)))
                members.append(rows + [len(references)] * (width - len(rows)))
                start += len(gallery)
            out[:, indices] = class_similarity(embeddings.float(), references,
                                               torch.tensor(members), k)
        return out

    def _neighbours(self, photos: int) -> int:
        return max(1, min(self.neighbours, photos // PHOTOS_PER_NEIGHBOUR))

    def guesses(self, ranked: list[list[Evidence]],
                embeddings: torch.Tensor | None) -> list[list[Evidence]]:
        """Each photo's candidates, a learned landmark first where it wins (see the module)."""
        if not self.learned or embeddings is None or not ranked:
            return ranked
        similarity = self.similarities(embeddings).tolist()
        return [self._guess(row, sims) for row, sims in zip(ranked, similarity, strict=True)]

    def _guess(self, candidates: list[Evidence], sims: list[float]) -> list[Evidence]:
        known = [c.similarity for c in candidates]
        if not candidates or None in known:
            return candidates
        best = max(range(len(sims)), key=sims.__getitem__)
        if sims[best] <= max(known):
            return candidates
        pool = [s / TEMPERATURE for s in known + sims]
        top = max(pool)
        probability = math.exp(pool[len(known) + best] - top) / sum(
            math.exp(s - top) for s in pool)
        guess = Evidence(self.learned[best].landmark, probability, sims[best],
                          candidates[0].ordinary)
        return [guess, *candidates]


# -- learning ------------------------------------------------------------------------------


@dataclass
class Redecided:
    """What a re-decision from stored embeddings changed, and what a landmark now shows."""

    photos: int = 0  # photos re-decided (those with an embedding by this network)
    #: Of those, the photos whose tag or suggestion changed (a new best guess that is
    #: decided as before is no change to anyone).
    changed: int = 0
    #: Per learned landmark slug: (photos tagged, photos suggested) after the re-decision.
    matching: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass
class Learning:
    """What ``learn`` did."""

    landmark: Landmark
    added: int  # photos added to its gallery now
    photos: int  # photos in its gallery in all
    skipped: list[tuple[str, str]]  # (path, reason): photos that could not be used
    agreement: float  # median over its photos of their mean similarity to the others
    outliers: list[tuple[str, float]]  # (source, mean similarity): probably wrong photos
    redecided: Redecided


class KnownLandmarkError(ConfigError):
    """Photos to learn a landmark from that show one the model knows."""


def photo_paths(paths: Iterable[str | os.PathLike]) -> list[str]:
    """The files given, and the image files inside the folders given (as a scan walks them)."""
    from phototagger.scan.changes import looks_like_image
    from phototagger.scan.walk import FoundFile, walk

    files = []
    for path in paths:
        if os.path.isdir(path):
            found = [item.path for item in walk([Path(path)]) if isinstance(item, FoundFile)]
            files.extend(sorted(p for p in found if looks_like_image(p)))
        else:
            files.append(os.path.abspath(path))
    return files


def embed_photos(model: LandmarkModel, paths: Sequence[str]) -> tuple[
        list[tuple[str, np.ndarray]], list[tuple[str, str]]]:
    """Each photo's embedding, decoded as a scan decodes it; those that fail, with why.

    Photos most of which the model itself tags as one of its landmarks are refused: learnt
    under another name, that landmark would take over the model's own tags of it. So are
    photos most of which look like ordinary photos (as ``places`` leaves them out)."""
    import torch

    from phototagger.imaging import load_input

    inputs, details, kept, skipped = [], [], [], []
    for path in paths:
        try:
            tensor, facts = load_input(path, model.preprocess)
        except ImageError as error:
            skipped.append((path, str(error).replace(f"{path}: ", "", 1)))
            continue
        inputs.append(tensor)
        details.append(facts.detail)
        kept.append(path)
    if not inputs:
        return [], skipped
    scores = model.scores(torch.stack(inputs))
    if scores.embeddings is None:
        raise ConfigError(f"{model.path} has no reference photos (format 1): it cannot learn")
    ordinary = int((scores.ordinary >= ORDINARY_LIMIT).sum()) if scores.ordinary is not None \
        else 0
    if ordinary * 2 > len(kept):
        raise ConfigError(
            f"{ordinary} of these {len(kept)} photos look like ordinary photos of no landmark "
            "(as the model's photos of food, faces or documents do): a landmark is learnt "
            "from photos of the place")
    policy = Policy.of(model)
    known = [ranked[0].landmark for ranked, detail in zip(model.ranked(scores, 1), details,
                                                          strict=True)
             if decide(ranked[0], Facts(detail), policy).tagged]
    if known:
        landmark = max(set(known), key=known.count)
        count = known.count(landmark)
        if count * 2 > len(kept):
            raise KnownLandmarkError(
                f"{count} of these {len(kept)} photos show {landmark.name}, which the model "
                f"knows already: tag them with it (`phototagger tag PHOTO... --landmark "
                f"{landmark.name!r}`)")
    return list(zip(kept, scores.embeddings.numpy(), strict=True)), skipped


def agreement(vectors: np.ndarray) -> tuple[float, np.ndarray]:
    """The median, over the photos, of each one's mean similarity to the others; and those."""
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, 0.0)
    each = similarity.sum(1) / max(1, len(vectors) - 1)
    return float(np.median(each)), each


def learn(
    library: Library,
    model: LandmarkModel,
    name: str,
    paths: Sequence[str | os.PathLike],
    place: dict | None = None,
    wait: float = 10,
    policy: Policy | None = None,
) -> Learning:
    """Add ``name`` to the index's vocabulary from these photos (or add them to its gallery),
    then re-decide the indexed photos from their stored embeddings."""
    landmark = _new(model, name, place)
    files = photo_paths(paths)
    if not files:
        raise ConfigError("no photos given (folders with no image files in them)")
    embedded, skipped = embed_photos(model, files)
    return _learn(library, model, landmark, embedded, skipped, wait, policy)


def learn_place(
    library: Library,
    model: LandmarkModel,
    name: str,
    place_id: str,
    place: dict | None = None,
    wait: float = 10,
    policy: Policy | None = None,
) -> Learning:
    """Learn ``name`` from a place's photos (phototagger.places), from their stored
    embeddings; without coordinates given, it stands at the place's GPS median when tight."""
    from phototagger.places import place as find_place

    place = dict(place or {})
    _new(model, name, place)  # its name and coordinates checked before the clustering
    with library.session() as session:
        found = find_place(session, model.network_id, place_id)
    if found.position is not None and place.get("latitude") is None \
            and place.get("longitude") is None:
        place["latitude"], place["longitude"] = found.position
    return _learn(library, model, _new(model, name, place),
                  list(zip(found.paths, found.vectors, strict=True)), [], wait, policy)


def _new(model: LandmarkModel, name: str, place: dict | None) -> Landmark:
    landmark = new_landmark(name, **(place or {}))
    wanted = fold(name)
    if model.landmark(landmark.slug) is not None or any(
            wanted in {fold(lm.name), *map(fold, lm.aliases)} for lm in model.classes):
        raise ConfigError(f"{name!r} is one of the model's own landmarks already (its name or "
                          "another name of it)")
    if model.network_id is None:
        raise ConfigError(f"{model.path} has no reference photos (format 1): it cannot learn")
    return landmark


def _learn(library: Library, model: LandmarkModel, landmark: Landmark,
           embedded: list[tuple[str, np.ndarray]], skipped: list[tuple[str, str]],
           wait: float, policy: Policy | None) -> Learning:
    with library.lock(wait), library.session() as session:
        row = session.get(orm.Landmark, landmark.slug)
        if row is not None and not row.learned:
            raise ConfigError(
                f"{landmark.name!r} is the name of another model's landmark in this index")
        rows = session.execute(
            select(orm.GalleryPhoto.source, orm.GalleryPhoto.vector).where(
                orm.GalleryPhoto.slug == landmark.slug,
                orm.GalleryPhoto.network == model.network_id,
            ).order_by(orm.GalleryPhoto.id)
        ).all()
        known = {source for source, _ in rows}
        embedded = [(source, v) for source, v in embedded if source not in known]  # once each
        before = [vector for _, vector in rows]
        if len(before) + len(embedded) < MIN_PHOTOS:
            usable = len(before) + len(embedded)
            raise ConfigError(
                f"{usable} usable photo{'s' if usable != 1 else ''} of {landmark.name}: "
                f"learning a landmark needs at least {MIN_PHOTOS}"
            )
        row = _learned_row(session, row, landmark)
        session.flush()  # the landmark's row before its photos' rows
        session.add_all(
            orm.GalleryPhoto(slug=row.slug, network=model.network_id, source=source,
                             vector=search.encode(vector))
            for source, vector in embedded
        )
        session.flush()
        vectors = np.vstack([search.decode(list(before)), *[v for _, v in embedded]]) \
            if before else np.vstack([v for _, v in embedded])
        sources = [source for source, _ in rows] + [source for source, _ in embedded]
        median, each = agreement(vectors)
        outliers = [(sources[i], float(each[i])) for i in np.argsort(each)
                    if each[i] < median - OUTLIER_GAP]
        redecided = redecide(library, session, model, policy or Policy.of(model))
        session.commit()
        shown = library.landmark(session, row.slug)
    return Learning(shown, len(embedded), len(vectors), skipped, median, outliers, redecided)


def remove_from_gallery(session: Session, slug: str, source: str) -> None:
    """A person took ``slug`` off this photo: it is no longer a photo of that landmark to
    learn from (for any network)."""
    session.execute(delete(orm.GalleryPhoto).where(orm.GalleryPhoto.slug == slug,
                                                   orm.GalleryPhoto.source == source))


def add_to_gallery(library: Library, session: Session, slug: str, network: str,
                   path: str) -> bool:
    """Add an indexed photo a person tagged with a learned landmark to its gallery, from its
    stored embedding; whether it was added (a photo not yet scanned has none)."""
    row = session.get(orm.Landmark, slug)
    photo = library.photo_at(session, path)
    if row is None or not row.learned or photo is None or photo.id is None:
        return False
    vector = session.get(orm.Embedding, (photo.id, network))
    source = photo.path
    known = session.scalar(select(orm.GalleryPhoto.id).where(
        orm.GalleryPhoto.slug == slug, orm.GalleryPhoto.network == network,
        orm.GalleryPhoto.source == source))
    if vector is None or known is not None:
        return False
    session.add(orm.GalleryPhoto(slug=slug, network=network, source=source,
                                 vector=vector.vector))
    session.commit()
    return True


def learned_landmarks(session: Session) -> list[tuple[orm.Landmark, int]]:
    """The landmarks this index learned, with how many photos each was learned from."""
    from sqlalchemy import func

    counts = dict(session.execute(
        select(orm.GalleryPhoto.slug, func.count()).group_by(orm.GalleryPhoto.slug)).all())
    rows = session.scalars(select(orm.Landmark).where(orm.Landmark.learned)
                           .order_by(orm.Landmark.name))
    return [(row, counts.get(row.slug, 0)) for row in rows]


def _learned_row(session: Session, row: orm.Landmark | None, landmark: Landmark) -> orm.Landmark:
    """The index's row of a learned landmark: made, or its place fields updated where given."""
    if row is None:
        row = orm.Landmark(slug=landmark.slug, name=landmark.name, aliases=[], learned=True)
        session.add(row)
    for key, value in landmark.to_dict().items():
        if key not in ("slug", "aliases") and value is not None:
            setattr(row, key, value)
    return row


def forget(
    library: Library, model: LandmarkModel, name: str, wait: float = 10,
    policy: Policy | None = None,
) -> tuple[Landmark, int, Redecided]:
    """Remove a learned landmark and exactly the tags it caused (in the files too); the
    photos it had are re-decided without it. A person's own tag with it stays (the name and
    place stay in the index for it). Returns the landmark, the files it was taken out of and
    the re-decision."""
    from phototagger.corrections import resolve_landmark
    from phototagger.filetags import remove_photo_tags

    with library.lock(wait), library.session() as session:
        landmark = resolve_landmark(library, session, name)
        row = session.get(orm.Landmark, landmark.slug)
        if not row.learned:
            raise ConfigError(f"{landmark.name} is a model's landmark, not a learned one")
        session.execute(delete(orm.GalleryPhoto).where(orm.GalleryPhoto.slug == row.slug))
        untagged = 0
        caused = session.scalars(select(orm.Photo).where(
            orm.Photo.writes.any(orm.Write.slug == row.slug),
            orm.Photo.tag_state.is_distinct_from("confirmed"),
        )).unique().all()
        for photo in caused:
            if os.path.exists(photo.fs_path):
                remove_photo_tags(session, photo, photo.fs_path)
                untagged += 1
        session.execute(
            update(orm.Photo)
            .where(orm.Photo.landmark_slug == row.slug, orm.Photo.tag_state == "auto")
            .values(landmark_slug=None, confidence=None, tag_state=None, model_pk=None)
        )
        session.execute(update(orm.Photo).where(orm.Photo.suggested_slug == row.slug)
                        .values(suggested_slug=None))
        redecided = redecide(library, session, model, policy or Policy.of(model))
        still = session.scalar(select(orm.Photo.id).where(orm.Photo.landmark_slug == row.slug))
        if still is None:
            session.execute(delete(orm.Prediction).where(orm.Prediction.slug == row.slug))
            session.delete(row)
        else:  # a person's tag: the place stays known, no longer learned
            row.learned = False
        session.commit()
    return landmark, untagged, redecided


# -- re-deciding from stored embeddings ----------------------------------------------------


def redecide(library: Library, session: Session, model: LandmarkModel,
             policy: Policy) -> Redecided:
    """Decide again every indexed photo this model predicted and whose embedding by its
    network is stored, with the index's vocabulary: no photo is decoded.

    A photo that now gets a tag, or loses one, is changed in the index only; the next scan
    that writes brings its file in line (its change detection sees the tags out of date).
    A person's decision is never changed.
    """
    import torch

    vocabulary = Vocabulary.of(library, session, model)
    model_row = library.ensure_model(session, model)
    candidates: dict[int, list[Evidence]] = {}
    previous: dict[int, tuple[str, float]] = {}
    connection = session.connection()  # plain rows: the ORM's took a third of the time
    for photo_id, rank, slug, probability, similarity, ordinary in connection.execute(
        select(orm.Prediction.photo_id, orm.Prediction.rank, orm.Prediction.slug,
               orm.Prediction.probability, orm.Prediction.similarity, orm.Prediction.ordinary)
        .where(orm.Prediction.model_pk == model_row.id)
        .order_by(orm.Prediction.photo_id, orm.Prediction.rank)
    ):
        if rank == 0:
            previous[photo_id] = (slug, probability)
        landmark = model.landmark(slug)
        if landmark is not None:  # the model's own candidates; a learned guess is made anew
            candidates.setdefault(photo_id, []).append(
                Evidence(landmark, probability, similarity, ordinary))
    ids, blobs = [], []
    for photo_id, vector in connection.execute(
        select(orm.Embedding.photo_id, orm.Embedding.vector)
        .where(orm.Embedding.network == model.network_id)
        .order_by(orm.Embedding.photo_id)
    ):
        if photo_id in candidates:
            ids.append(photo_id)
            blobs.append(vector)
    result = Redecided(photos=len(ids))
    if ids:
        embeddings = torch.from_numpy(search.decode(blobs))
        ranked = vocabulary.guesses([candidates[i] for i in ids], embeddings)
        reranked = [(i, row) for i, row in zip(ids, ranked, strict=True)
                    if (row[0].landmark.slug, row[0].probability) != previous.get(i)]
        result.changed = _record(session, reranked, model_row, policy)
    _count_matching(session, vocabulary, result)
    return result


def _record(session: Session, changed: list[tuple[int, list[Evidence]]],
            model_row: orm.Model, policy: Policy) -> int:
    """Store the new candidates of these photos and apply their decisions, in bulk; how many
    photos' tag or suggestion changed."""
    if not changed:
        return 0
    facts = {
        row.id: row for row in session.execute(
            select(orm.Photo.id, orm.Photo.detail, orm.Photo.camera_latitude,
                   orm.Photo.camera_longitude, orm.Photo.tag_state, orm.Photo.landmark_slug,
                   orm.Photo.suggested_slug)
            .where(orm.Photo.id.in_([i for i, _ in changed]))
        )
    }
    updates, rows = [], []
    for photo_id, ranked in changed:
        photo = facts[photo_id]
        best = ranked[0]
        camera = None if photo.camera_latitude is None or photo.camera_longitude is None \
            else (photo.camera_latitude, photo.camera_longitude)
        decision = decide(
            Evidence(best.landmark, best.probability, best.similarity, best.ordinary),
            Facts(photo.detail, camera, photo.tag_state), policy)
        rows.extend(
            {"photo_id": photo_id, "model_pk": model_row.id, "rank": rank,
             "slug": c.landmark.slug, "probability": c.probability,
             "similarity": c.similarity, "ordinary": c.ordinary}
            for rank, c in enumerate(ranked)
        )
        if photo.tag_state in ("confirmed", "removed"):
            continue
        change = {"id": photo_id, "decision": decision.reason.value,
                  "decided_threshold": policy.threshold}
        if decision.tagged:
            change |= {"landmark_slug": best.landmark.slug, "confidence": best.probability,
                       "tag_state": "auto", "model_pk": model_row.id, "suggested_slug": None}
        else:
            suggested = decision.outcome is Outcome.SUGGESTED
            change |= {"landmark_slug": None, "confidence": None, "tag_state": None,
                       "model_pk": None,
                       "suggested_slug": best.landmark.slug if suggested else None}
        updates.append(change)
    session.execute(delete(orm.Prediction).where(
        orm.Prediction.photo_id.in_([i for i, _ in changed]),
        orm.Prediction.model_pk == model_row.id,
    ))
    session.execute(insert(orm.Prediction), rows)
    if updates:
        session.execute(update(orm.Photo), updates)
    return sum(1 for change in updates
               if (change["landmark_slug"], change["suggested_slug"])
               != (facts[change["id"]].landmark_slug, facts[change["id"]].suggested_slug))


def _count_matching(session: Session, vocabulary: Vocabulary, result: Redecided) -> None:
    slugs = [item.landmark.slug for item in vocabulary.learned]
    for slug in slugs:
        tagged = session.query(orm.Photo).filter(orm.Photo.landmark_slug == slug).count()
        suggested = session.query(orm.Photo).filter(orm.Photo.suggested_slug == slug).count()
        result.matching[slug] = (tagged, suggested)
