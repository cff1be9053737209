"""The most likely landmarks in one photo: what ``predict`` and the app show.

Same decoding and preprocessing as ``scan`` (``imaging``), same model loading (``model``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from phototagger.errors import ImageError
from phototagger.imaging import is_featureless, prepare, read_file
from phototagger.landmarks import Landmark
from phototagger.model import LandmarkModel
from phototagger.tags import read_camera_gps


@dataclass
class Guess:
    landmark: Landmark
    probability: float

    def to_dict(self) -> dict:
        return {**self.landmark.to_dict(), "probability": round(self.probability, 4)}


@dataclass
class ImagePrediction:
    """Top-k guesses for one image; ``confident`` when a scan would tag the best one: it
    reaches the model's threshold, the image has detail to go on, and the camera's own GPS,
    if any, is near enough to it."""

    source: str
    guesses: list[Guess] = field(default_factory=list)
    threshold: float = 0.0
    error: str | None = None
    camera_gps: tuple[float, float] | None = None
    #: Too little detail for the model's answer to mean anything (imaging.MIN_DETAIL).
    featureless: bool = False

    @property
    def sure_enough(self) -> bool:
        return bool(self.guesses) and self.guesses[0].probability >= self.threshold

    @property
    def far_from_camera(self) -> float | None:
        """km between the camera and a sure best guess it could not have shown, else None."""
        if not self.sure_enough or self.guesses[0].landmark.seen_from(self.camera_gps):
            return None
        return self.guesses[0].landmark.distance_from(self.camera_gps)

    @property
    def confident(self) -> bool:
        return self.sure_enough and not self.featureless and self.far_from_camera is None

    def to_dict(self) -> dict:
        far = self.far_from_camera
        return {
            "source": self.source,
            "error": self.error,
            "confident": self.confident,
            "threshold": self.threshold,
            "camera_gps": list(self.camera_gps) if self.camera_gps else None,
            "featureless": self.featureless,
            "far_from_camera_km": None if far is None else round(far),
            "landmarks": [guess.to_dict() for guess in self.guesses],
        }


def predict_bytes(
    model: LandmarkModel, data: bytes, source: str, top_k: int = 5
) -> ImagePrediction:
    """Predict from an image's bytes; a bad image gives an ``error``, not an exception."""
    result = ImagePrediction(source, threshold=model.threshold)
    try:
        tensor, facts = prepare(data, model.preprocess)
    except ImageError as error:
        result.error = str(error)
        return result
    result.camera_gps = read_camera_gps(source, data)
    result.featureless = is_featureless(facts.detail)
    probabilities = model.probabilities(tensor.unsqueeze(0))
    result.guesses = [Guess(lm, p) for lm, p in model.top_k(probabilities, top_k)[0]]
    return result


def predict_file(model: LandmarkModel, path: str, top_k: int = 5) -> ImagePrediction:
    try:
        data = read_file(path)
    except ImageError as error:
        return ImagePrediction(path, threshold=model.threshold, error=str(error))
    return predict_bytes(model, data, path, top_k)
