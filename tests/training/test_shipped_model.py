"""The model that ships in the package, loaded the way ``scan`` loads it."""

from pathlib import Path

import pytest
import torch

from phototagger.config import DEFAULT_MODEL
from phototagger.imaging import load_input
from phototagger.model import LandmarkModel
from training.evaluate import evaluation_samples

ICONIC = ("eiffel-tower", "taj-mahal", "colosseum", "statue-of-liberty", "pyramids-of-giza",
          "christ-the-redeemer", "burj-khalifa", "great-wall-of-china")


@pytest.fixture(scope="module")
def shipped() -> LandmarkModel:
    return LandmarkModel.load(DEFAULT_MODEL, device="cpu")


def test_shipped_model_is_calibrated_small_and_documented(shipped: LandmarkModel):
    assert DEFAULT_MODEL.stat().st_size <= 30e6
    assert len(shipped.classes) == 49
    assert shipped.temperature != 1.0 and 0 < shipped.threshold < 1
    metrics, training = shipped.meta["metrics"], shipped.meta["training"]
    assert metrics["val_top1"] >= 0.9 and metrics["precision"] >= 0.9
    assert training["split_seed"] == 0 and "python -m training train" in training["command"]


def test_shipped_model_tags_held_out_shared_photos(shipped: LandmarkModel, shared_data: Path):
    """The first two validation photos (never trained on) of eight famous landmarks."""
    samples = evaluation_samples(shipped, shared_data / "landmarks" / "train", "val")
    slugs = [landmark.slug for landmark in shipped.classes]
    chosen = [s for slug in ICONIC for s in [s for s in samples if s[1] == slugs.index(slug)][:2]]
    batch = torch.stack([load_input(path, shipped.preprocess)[0] for path, _ in chosen])
    predicted = shipped.probabilities(batch).argmax(-1).tolist()
    right = sum(p == label for p, (_, label) in zip(predicted, chosen, strict=True))
    assert right >= len(chosen) - 1
