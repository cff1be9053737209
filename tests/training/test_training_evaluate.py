"""Evaluation numbers checked against values worked out by hand."""

from pathlib import Path

import pytest
import torch
from synthetic import FIXTURES, make_dataset, write_photo
from torch import nn

from phototagger.landmarks import read_gazetteer
from phototagger.model import LandmarkModel, read_meta, save_model_file
from training import calibrate
from training.compare import BEGIN, compare, parameter_count
from training.evaluate import evaluate, summarise


def test_precision_coverage_and_threshold_by_hand():
    # confidences 0.9 (right), 0.8 (wrong), 0.6 (right), 0.3 (right); negatives 0.7 and 0.2
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.2]])
    labels = torch.tensor([0, 0, 0, 0])
    negatives = torch.tensor([[0.7, 0.3], [0.2, 0.1]])
    curve = calibrate.precision_coverage(probs, labels, negatives,
                                         torch.tensor([0.0, 0.5, 0.85]))
    assert curve[1] == {"threshold": 0.5, "precision": 2 / 4, "coverage": 3 / 4,
                        "recall": 2 / 4, "negatives_tagged": 1 / 2}
    assert curve[2]["precision"] == 1.0 and curve[2]["coverage"] == 1 / 4
    assert curve[0]["precision"] == 3 / 6 and curve[0]["negatives_tagged"] == 1.0
    full = calibrate.precision_coverage(probs, labels, negatives)
    assert calibrate.choose_threshold(full, 0.95)["threshold"] == 0.805  # first grid step > 0.8


def test_threshold_falls_back_to_the_best_precision_that_still_tags_half():
    curve = [{"threshold": 0.5, "precision": 0.8, "coverage": 0.9},
             {"threshold": 0.9, "precision": 0.9, "coverage": 0.6},
             {"threshold": 0.99, "precision": 0.93, "coverage": 0.2}]
    assert calibrate.choose_threshold(curve, 0.95)["threshold"] == 0.9


def test_expected_calibration_error_by_hand():
    probs = torch.tensor([[0.9, 0.1], [0.8, 0.2]])
    labels = torch.tensor([0, 1])  # first right at 0.9, second wrong at 0.8
    assert calibrate.reliability(probs, labels)["ece"] == pytest.approx(0.5 * 0.1 + 0.5 * 0.8)


def test_temperature_recovers_an_overconfidence_factor():
    generator = torch.Generator().manual_seed(0)
    calibrated = torch.randn(4000, 5, generator=generator) * 2
    labels = torch.multinomial(calibrated.softmax(-1), 1, generator=generator).squeeze(1)
    assert calibrate.fit_temperature(calibrated * 3, labels) == pytest.approx(3.0, rel=0.1)


def test_summary_by_hand():
    logits = torch.tensor([[4.0, 0, 0], [0, 3, 1], [0, 0, 2], [1, 0, 0]])
    labels = torch.tensor([0, 0, 2, 1])
    report = summarise(logits, labels, torch.zeros(0, 3), ["a", "b", "c"])
    assert report["val_top1"] == 0.5 and report["val_top5"] == 1.0
    assert report["per_class"] == {"a": 0.5, "b": 0.0, "c": 1.0}
    assert report["confusion"] == [[1, 1, 0], [1, 0, 0], [0, 0, 1]]


class ColourNet(nn.Module):
    """A fixed model: the logit of class c is four times the mean of colour channel c."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 4 * x.mean(dim=(2, 3))


def colour_model(tmp_path: Path) -> Path:
    classes = [lm.to_dict() for lm in list(read_gazetteer(FIXTURES / "gazetteer.csv").values())[:3]]
    meta = {"name": "colour", "version": "0", "architecture": "colournet", "classes": classes,
            "preprocess": {"input_size": 32, "resize": 36, "mean": [0.5] * 3, "std": [0.5] * 3},
            "training": {}, "metrics": {}}
    path = tmp_path / "colour.pt"
    save_model_file(torch.jit.script(ColourNet()), meta, path)
    return path


def evaluated(tmp_path: Path) -> tuple[Path, dict]:
    path = colour_model(tmp_path)
    data = make_dataset(tmp_path / "data", per_class=2)  # red, green, blue: all right
    write_photo(data / "colosseum" / "green.jpg", (40, 200, 40), 99)  # green: read as Eiffel
    negatives = tmp_path / "negatives"
    write_photo(negatives / "grey.jpg", (128, 128, 128), 5)
    return path, evaluate(path, data, negatives, split="all", plots=tmp_path / "plots")


def test_evaluate_a_fixed_model_end_to_end(tmp_path: Path):
    path, report = evaluated(tmp_path)

    assert (report["val_images"], report["negatives"]) == (7, 1)
    assert report["val_top1"] == pytest.approx(6 / 7)
    assert report["per_class"] == pytest.approx(
        {"colosseum": 2 / 3, "eiffel-tower": 1.0, "hagia-sophia": 1.0})
    stored = read_meta(path)
    assert stored["threshold"] == report["threshold"]
    assert stored["temperature"] == pytest.approx(report["temperature"], abs=1e-4)
    assert stored["metrics"]["val_top1"] == report["val_top1"]
    assert LandmarkModel.load(path).threshold == report["threshold"]
    for name in ("confusion.png", "reliability.png", "precision_coverage.png"):
        assert (tmp_path / "plots" / name).stat().st_size > 0


def test_compare_writes_its_table_between_markers(tmp_path: Path):
    path, report = evaluated(tmp_path)
    doc = tmp_path / "models.md"
    doc.write_text("# Models\n\nWhy these models.\n")
    compare([path], doc)
    compare([path], doc)  # a second run replaces the table, keeps the text
    text = doc.read_text()
    assert text.count(BEGIN) == 1 and "Why these models." in text
    assert f"| colour | colournet | 32 px | {report['val_top1']:.1%} |" in text
    assert (tmp_path / "plots" / "compare.png").is_file()


def test_compare_counts_the_parameters_of_the_file_not_of_the_frozen_network(tiny_model_path):
    classes = len(LandmarkModel.load(tiny_model_path).classes)
    # TinyNet: a 3x3 convolution 3 -> 8 with bias, then a linear layer 8 -> classes with bias
    assert parameter_count(tiny_model_path) == 8 * 3 * 9 + 8 + 8 * classes + classes
