"""The most likely landmarks in one photo: what ``predict`` and the app show.

Same decoding and preprocessing as ``scan`` (``imaging``), same model loading (``model``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from phototagger.errors import ImageError
from phototagger.imaging import prepare, read_file
from phototagger.landmarks import Landmark
from phototagger.model import LandmarkModel


@dataclass
class Guess:
    landmark: Landmark
    probability: float

    def to_dict(self) -> dict:
        return {**self.landmark.to_dict(), "probability": round(self.probability, 4)}


@dataclass
class ImagePrediction:
    """Top-k guesses for one image; ``confident`` when the best reaches the model's threshold."""

    source: str
    guesses: list[Guess] = field(default_factory=list)
    threshold: float = 0.0
    error: str | None = None

    @property
    def confident(self) -> bool:
        return bool(self.guesses) and self.guesses[0].probability >= self.threshold

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "error": self.error,
            "confident": self.confident,
            "threshold": self.threshold,
            "landmarks": [guess.to_dict() for guess in self.guesses],
        }


def predict_bytes(
    model: LandmarkModel, data: bytes, source: str, top_k: int = 5
) -> ImagePrediction:
    """Predict from an image's bytes; a bad image gives an ``error``, not an exception."""
    result = ImagePrediction(source, threshold=model.threshold)
    try:
        tensor, _ = prepare(data, model.preprocess)
    except ImageError as error:
        result.error = str(error)
        return result
    probabilities = model.probabilities(tensor.unsqueeze(0))
    result.guesses = [Guess(lm, p) for lm, p in model.top_k(probabilities, top_k)[0]]
    return result


def predict_file(model: LandmarkModel, path: str, top_k: int = 5) -> ImagePrediction:
    try:
        data = read_file(path)
    except ImageError as error:
        return ImagePrediction(path, threshold=model.threshold, error=str(error))
    return predict_bytes(model, data, path, top_k)
