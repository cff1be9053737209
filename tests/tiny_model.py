"""The tests' model files: a tiny real network in phototagger's format, built in a test."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from images import FIXTURES
from phototagger.landmarks import read_gazetteer
from phototagger.model import save_model_file


class TinyNet(nn.Module):
    """Small enough to build in a test, real enough to give different scores to different images.

    Laid out as the real networks are (``features``, ``pool``, ``classifier``), so that
    ``training.gallery`` can give it reference photos."""

    def __init__(self, classes: int):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(8, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


#: Margins every photo passes: the fixture model tags whatever clears its threshold, as the
#: tests of the scan, the index and the files want; the gate has tests of its own.
OPEN_GATE = {"tag_margin": -4.0, "suggest_margin": -4.0}


def gated(net: nn.Module, classes: int, references=None, ordinary=None, **margins):
    """``net`` with reference photos (format 2): ``references`` a list of (image tensor, class)
    and ``ordinary`` a list of image tensors, both preprocessed; none: no reference photos."""
    from training.gallery import EvidenceNetwork, Views, fit_projection, set_references

    network = EvidenceNetwork(net, len(net.features), None, 8, classes).eval()

    def views(images):
        with torch.no_grad():
            logits, landmark, imagenet = network.features(torch.stack(images))
        return Views(logits, landmark, imagenet, list(range(len(images))))

    if references:
        refs = views([image for image, _ in references])
        fit_projection(network, refs)
        set_references(network, refs, [label for _, label in references],
                       views(ordinary) if ordinary else None)
    evidence = {"split": len(net.features), "neighbours": network.neighbours, "dimensions": 8,
                "references": len(references or ()), **OPEN_GATE, **margins}
    return torch.jit.script(network), evidence


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


def build_tiny_model(path: Path, format_version: int = 2, **overrides) -> Path:
    """The fixture landmarks on a TinyNet; format 2 with an open gate, or format 1."""
    torch.manual_seed(0)
    gazetteer = read_gazetteer(FIXTURES / "gazetteer.csv")
    classes = [landmark.to_dict() for landmark in gazetteer.values()]
    net = TinyNet(len(classes)).eval()
    meta = tiny_model_meta(classes, **overrides)
    if format_version == 1:
        save_model_file(torch.jit.script(net), meta, path)
        return path
    module, evidence = gated(net, len(classes))
    save_model_file(module, {"evidence": evidence, **meta}, path)
    return path
