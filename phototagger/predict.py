"""The most likely landmarks in one photo, and what a scan would decide: ``predict`` and the app.

Same decoding and preprocessing as ``scan`` (``imaging``), same model loading (``model``), same
decision (``decision``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from phototagger.decision import Decision, Evidence, Facts, Policy, decide
from phototagger.errors import ImageError
from phototagger.imaging import ImageFacts, prepare, prepared, read_file
from phototagger.model import LandmarkModel
from phototagger.tags import read_camera_gps

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from phototagger.vocabulary import Vocabulary


@dataclass
class ImagePrediction:
    """Top-k candidates for one image and the decision a scan would make on the best one."""

    source: str
    policy: Policy
    candidates: list[Evidence] = field(default_factory=list)
    error: str | None = None
    camera_gps: tuple[float, float] | None = None
    decision: Decision | None = None

    @property
    def confident(self) -> bool:
        """Whether a scan would write the best candidate into the file."""
        return self.decision is not None and self.decision.tagged

    @property
    def explanation(self) -> str | None:
        return None if self.decision is None else self.decision.explain(self.policy)

    def to_dict(self) -> dict:
        decision = self.decision
        return {
            "source": self.source,
            "error": self.error,
            "confident": self.confident,
            "outcome": None if decision is None else decision.outcome.value,
            "reason": None if decision is None else decision.reason.value,
            "explanation": self.explanation,
            "threshold": self.policy.threshold,
            "tag_margin": self.policy.tag_margin,
            "tag_probability": self.policy.tag_probability,
            "tag_floor": self.policy.tag_floor,  # what a tag needs: the larger of the two
            "camera_gps": list(self.camera_gps) if self.camera_gps else None,
            "far_from_camera_km": None if decision is None or decision.distance_km is None
            else round(decision.distance_km),
            "landmarks": [_candidate_dict(c) for c in self.candidates],
        }


def _candidate_dict(candidate: Evidence) -> dict:
    margin = None
    if candidate.similarity is not None and candidate.ordinary is not None:
        margin = round(candidate.similarity - candidate.ordinary, 4)
    return {
        **candidate.landmark.to_dict(),
        "probability": round(candidate.probability, 4),
        "similarity": None if candidate.similarity is None else round(candidate.similarity, 4),
        "margin": margin,
    }


def predict_bytes(
    model: LandmarkModel, data: bytes, source: str, top_k: int = 5,
    vocabulary: Vocabulary | None = None,
) -> ImagePrediction:
    """Predict from an image's bytes; a bad image gives an ``error``, not an exception.

    ``vocabulary``: the landmarks an index learned, weighed as a scan of it would."""
    try:
        tensor, facts = prepare(data, model.preprocess)
    except ImageError as error:
        return ImagePrediction(source, Policy.of(model), error=str(error))
    return _predicted(model, tensor, facts, data, source, top_k, vocabulary)


def predict_decoded(
    model: LandmarkModel,
    image: Image.Image,
    facts: ImageFacts,
    data: bytes,
    source: str,
    top_k: int = 5,
    vocabulary: Vocabulary | None = None,
) -> ImagePrediction:
    """As :func:`predict_bytes`, from ``image`` as ``decode(data, min_side=resize)`` (or
    ``decode_sizes``) gave it: the app decodes an upload once, for its preview and this."""
    tensor, facts = prepared(image, facts, model.preprocess)
    return _predicted(model, tensor, facts, data, source, top_k, vocabulary)


def _predicted(
    model: LandmarkModel,
    tensor: torch.Tensor,
    facts: ImageFacts,
    data: bytes,
    source: str,
    top_k: int,
    vocabulary: Vocabulary | None,
) -> ImagePrediction:
    result = ImagePrediction(source, Policy.of(model))
    result.camera_gps = read_camera_gps(source, data)
    scores = model.scores(tensor.unsqueeze(0))
    ranked = model.ranked(scores, top_k)
    if vocabulary is not None:
        ranked = vocabulary.guesses(ranked, scores.embeddings)
    result.candidates = ranked[0]
    best = result.candidates[0]
    result.decision = decide(best, Facts(facts.detail, result.camera_gps), result.policy)
    return result


def predict_file(model: LandmarkModel, path: str, top_k: int = 5,
                 vocabulary: Vocabulary | None = None) -> ImagePrediction:
    try:
        data = read_file(path)
    except ImageError as error:
        return ImagePrediction(path, Policy.of(model), error=str(error))
    return predict_bytes(model, data, path, top_k, vocabulary)
