"""The model that ships in the package, loaded the way ``scan`` loads it."""

from pathlib import Path

import pytest
import torch

from phototagger.config import DEFAULT_MODEL
from phototagger.imaging import load_input
from phototagger.model import LandmarkModel
from training.evaluate import evaluation_samples


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
    """Three validation photos of every fourth landmark: never seen in training."""
    samples = evaluation_samples(shipped, shared_data / "landmarks" / "train", "val")
    chosen = [s for label in range(0, 49, 4) for s in [s for s in samples if s[1] == label][:3]]
    batch = torch.stack([load_input(path, shipped.preprocess)[0] for path, _ in chosen])
    predicted = shipped.probabilities(batch).argmax(-1).tolist()
    right = sum(p == label for p, (_, label) in zip(predicted, chosen, strict=True))
    assert right >= 0.9 * len(chosen)  # 39 photos; the validation top-1 is above 93 %
