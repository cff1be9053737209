"""The one place that decides what becomes of a photo's best guess: tagged, suggested or none.

``scan``, change detection, ``predict``, ``info``, the app and the evaluation all ask
:func:`decide`, so a photo is never tagged by one and refused by another. The rule, in order:

1. a person's decision holds (their landmark is the tag; a tag they removed stays off);
2. an image with next to no detail gets nothing (a lens cap, a wall of sky);
3. the camera's own GPS vetoes a landmark too far away to be in view;
4. the model must be sure enough for a suggestion (its calibrated probability reaches the
   threshold);
5. the reference photos must back it: the photo must look more like the landmark's own
   photos than like ordinary photos of no landmark, by the model file's margin. Below the
   suggestion margin it gets nothing;
6. a tag needs both lines of evidence strong: the tag margin and the tag probability (the
   softmax is the best single signal against landmarks the model never learnt, the margin
   against ordinary photos). Short of either it is a *suggestion* (in the index, for a person
   to confirm; never written into a file). A model file without reference photos
   (format 1) can only suggest.

It also holds the rule for a position estimated from the library's own GPS
(:func:`place_from_library`): a suggestion like a landmark's, never over camera GPS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from phototagger.imaging import is_featureless
from phototagger.landmarks import FARTHEST_VIEW_KM, Landmark


class Outcome(StrEnum):
    TAGGED = "tagged"
    SUGGESTED = "suggested"
    NONE = "none"


class Reason(StrEnum):
    """Why: stored in the index per photo, counted in a scan's summary, said in plain words."""

    VERIFIED = "verified"  # sure enough and backed by the reference photos
    PERSON = "person"  # a person's landmark
    REMOVED = "removed"  # a person removed the tag
    FEATURELESS = "featureless"
    FAR_FROM_CAMERA = "far_from_camera"
    BELOW_THRESHOLD = "below_threshold"
    UNVERIFIED = "unverified"  # plausible, but the reference photos do not back it enough
    UNSURE = "unsure"  # backed by the reference photos, but not probable enough for a tag
    NOT_SIMILAR = "not_similar"  # the reference photos speak against it
    NO_EVIDENCE = "no_evidence"  # a model file without reference photos


#: The outcome each reason stands for (what the index records is the reason).
OUTCOME_OF = {
    Reason.VERIFIED: Outcome.TAGGED,
    Reason.PERSON: Outcome.TAGGED,
    Reason.UNVERIFIED: Outcome.SUGGESTED,
    Reason.UNSURE: Outcome.SUGGESTED,
    Reason.NO_EVIDENCE: Outcome.SUGGESTED,
}


@dataclass(frozen=True)
class Evidence:
    """A model's best guess for a photo with what backs it."""

    landmark: Landmark
    probability: float
    #: How alike the photo is to the landmark's reference photos (None: the file has none).
    similarity: float | None = None
    #: How alike it is to ordinary photos of no landmark.
    ordinary: float | None = None

    @property
    def margin(self) -> float | None:
        if self.similarity is None or self.ordinary is None:
            return None
        return self.similarity - self.ordinary


@dataclass(frozen=True)
class Facts:
    """What the photo itself says: its detail, its camera's GPS, a person's decision on it."""

    detail: float | None = None
    camera_gps: tuple[float, float] | None = None
    #: ``confirmed`` (a person's landmark) or ``removed`` (a person took the tag away).
    person: str | None = None


@dataclass(frozen=True)
class Policy:
    """The operating point: the model file's own unless a scan overrides the threshold.

    ``threshold`` is the least probability for anything (a person may raise or lower it); a
    tag also needs ``tag_probability``, which a lower threshold never undercuts.
    """

    threshold: float
    #: Margins over the ordinary photos; None: the model brings no reference photos.
    tag_margin: float | None = None
    suggest_margin: float | None = None
    tag_probability: float | None = None

    @property
    def tag_floor(self) -> float:
        """The probability a tag needs."""
        return max(self.threshold, self.tag_probability or 0.0)

    @classmethod
    def recorded(cls, row) -> Policy:
        """The policy of a model as the index recorded it (a ``models`` row)."""
        return cls(row.threshold, row.tag_margin, row.suggest_margin, row.tag_probability)

    @classmethod
    def of(cls, model, threshold: float | None = None) -> Policy:
        """The policy of a :class:`~phototagger.model.LandmarkModel` (``threshold``: override)."""
        evidence = model.evidence or {}
        return cls(
            model.threshold if threshold is None else threshold,
            evidence.get("tag_margin"),
            evidence.get("suggest_margin"),
            evidence.get("tag_probability"),
        )


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: Reason
    evidence: Evidence | None = None
    #: km between the camera and the landmark, when the camera's GPS vetoed it.
    distance_km: float | None = None

    @classmethod
    def recorded(cls, reason: str, evidence: Evidence | None, camera_gps=None) -> Decision:
        """A decision as the index recorded it (its reason), with the recorded evidence."""
        reason = Reason(reason)
        distance = None
        if reason is Reason.FAR_FROM_CAMERA and evidence is not None:
            distance = evidence.landmark.distance_from(camera_gps)
        return cls(OUTCOME_OF.get(reason, Outcome.NONE), reason, evidence, distance)

    @property
    def tagged(self) -> bool:
        return self.outcome is Outcome.TAGGED

    def explain(self, policy: Policy) -> str:
        """The decision in plain words, e.g. for ``predict``, ``info`` and the app."""
        e = self.evidence
        name = e.landmark.name if e else "the landmark"
        looks = f"looks most like {name} ({e.probability:.2f})" if e else ""
        match self.reason:
            case Reason.PERSON:
                return f"{name}: tagged by a person"
            case Reason.REMOVED:
                return "no landmark: a person removed the tag"
            case Reason.FEATURELESS:
                return "no landmark: the image has next to no detail to go on"
            case Reason.FAR_FROM_CAMERA:
                km = "too far" if self.distance_km is None else f"{self.distance_km:,.0f} km"
                return (f"{looks}, but the camera's GPS puts it {km} away (more than "
                        f"{FARTHEST_VIEW_KM:,.0f} km): not tagged")
            case Reason.BELOW_THRESHOLD:
                return f"{looks}, below the threshold {policy.threshold:.2f}: not tagged"
            case Reason.NO_EVIDENCE:
                return (f"{looks}; this model file has no reference photos to check it "
                        "against: a suggestion only")
            case Reason.UNVERIFIED:
                return (f"{looks}, but its known photos are not similar enough "
                        f"({_margin(e)} against {policy.tag_margin:.2f} needed): a suggestion")
            case Reason.UNSURE:
                return (f"{looks}, and its known photos back it ({_margin(e)}), but it is not "
                        f"sure enough for a tag ({policy.tag_floor:.2f} needed): a suggestion")
            case Reason.NOT_SIMILAR:
                return (f"{looks}, but no known photo of it is similar enough "
                        f"({_margin(e)}): not tagged")
            case _:
                return (f"{name} ({e.probability:.2f}), and its known photos back it "
                        f"({_margin(e)} more alike than ordinary photos): tagged")


def _margin(evidence: Evidence) -> str:
    margin = evidence.margin
    return "no evidence" if margin is None else f"{margin:.2f}"


def decide(evidence: Evidence | None, facts: Facts, policy: Policy) -> Decision:
    """What becomes of a photo's best guess (``evidence``; None when there is no guess)."""
    if facts.person == "confirmed":
        return Decision(Outcome.TAGGED, Reason.PERSON, evidence)
    if facts.person == "removed":
        return Decision(Outcome.NONE, Reason.REMOVED, evidence)
    if evidence is None or is_featureless(facts.detail):
        return Decision(Outcome.NONE, Reason.FEATURELESS, evidence)
    if not evidence.landmark.seen_from(facts.camera_gps):
        km = evidence.landmark.distance_from(facts.camera_gps)
        return Decision(Outcome.NONE, Reason.FAR_FROM_CAMERA, evidence, km)
    if evidence.probability < policy.threshold:
        return Decision(Outcome.NONE, Reason.BELOW_THRESHOLD, evidence)
    margin = evidence.margin
    if margin is None or policy.tag_margin is None:
        return Decision(Outcome.SUGGESTED, Reason.NO_EVIDENCE, evidence)
    if margin < policy.tag_margin:
        if policy.suggest_margin is not None and margin >= policy.suggest_margin:
            return Decision(Outcome.SUGGESTED, Reason.UNVERIFIED, evidence)
        return Decision(Outcome.NONE, Reason.NOT_SIMILAR, evidence)
    if evidence.probability < policy.tag_floor:
        return Decision(Outcome.SUGGESTED, Reason.UNSURE, evidence)
    return Decision(Outcome.TAGGED, Reason.VERIFIED, evidence)


# -- a position from the library's own GPS -------------------------------------------------

#: A GPS-less photo takes the position of the library's photos with camera GPS that it looks
#: this much like (the cosine of their embeddings) ...
PLACE_SIMILARITY = 0.85
#: ... of its most alike ones, at most this many, at least PLACE_MATCHES ...
PLACE_NEIGHBOURS = 5
PLACE_MATCHES = 2
#: ... taken within this long of it, where both have a capture time ...
PLACE_WITHIN_S = 3 * 86400.0
#: ... and lying this near their median: their median is its estimated position.
PLACE_SPREAD_KM = 1.0


@dataclass(frozen=True)
class PositionEstimate:
    """Where a GPS-less photo was probably taken, from photos of the same library."""

    latitude: float
    longitude: float
    #: The farthest of the matching photos' positions from the median, in km.
    spread_km: float
    #: How many photos with camera GPS it came from.
    photos: int


def place_from_library(
    matches: Sequence[tuple[float, tuple[float, float], float | None]],
) -> PositionEstimate | None:
    """The one rule for a position estimated from the library: ``matches`` are the most alike
    photos with camera GPS, best first, as (similarity, position, seconds apart or None when
    either has no capture time). A photo with its own camera GPS is never asked about."""
    import statistics

    from phototagger.landmarks import distance_km

    near = [position for similarity, position, apart in matches[:PLACE_NEIGHBOURS]
            if similarity >= PLACE_SIMILARITY and (apart is None or apart <= PLACE_WITHIN_S)]
    if len(near) < PLACE_MATCHES:
        return None
    median = (statistics.median(lat for lat, _ in near), statistics.median(lon for _, lon in near))
    spread = max(distance_km(median, position) for position in near)
    if spread > PLACE_SPREAD_KM:
        return None
    return PositionEstimate(median[0], median[1], spread, len(near))
