"""Fixtures shared by every test: a real (tiny) model file in the project's format."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

from phototagger.landmarks import read_gazetteer
from phototagger.model import save_model_file

FIXTURES = Path(__file__).parent / "fixtures"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


class TinyNet(nn.Module):
    """Small enough to build in a test, real enough to give different scores to different images."""

    def __init__(self, classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1)
        )
        self.head = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.features(x), 1))


def tiny_model_meta(classes: list[dict], **overrides) -> dict:
    meta = {
        "name": "tiny-test-model",
        "version": "0.0.1",
        "architecture": "tinynet",
        "classes": classes,
        "preprocess": {
            "input_size": 64, "resize": 72,
            "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
        },
        "temperature": 1.0,
        "threshold": 0.0,
        "training": {"data": "none: random weights for tests"},
        "metrics": {},
    }
    meta.update(overrides)
    return meta


def build_tiny_model(path: Path, **overrides) -> Path:
    torch.manual_seed(0)
    gazetteer = read_gazetteer(FIXTURES / "gazetteer.csv")
    classes = [landmark.to_dict() for landmark in gazetteer.values()]
    net = TinyNet(len(classes)).eval()
    save_model_file(torch.jit.script(net), tiny_model_meta(classes, **overrides), path)
    return path


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    """A model file in phototagger's format with the six fixture landmarks (threshold 0)."""
    return build_tiny_model(tmp_path_factory.mktemp("model") / "tiny.pt")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` when this checkout has it; tests that need it skip elsewhere."""
    if not SHARED_DATA.is_dir() or os.environ.get("PHOTOTAGGER_NO_SHARED"):
        pytest.skip("../shared/data is not present on this machine")
    return SHARED_DATA
