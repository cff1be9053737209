"""Loading a model file: the checks that give a one-line error instead of a crash mid-scan."""

import pytest
import torch

from images import FIXTURES
from phototagger.errors import ModelFormatError
from phototagger.landmarks import read_gazetteer
from phototagger.model import LandmarkModel, save_model_file
from tiny_model import TinyNet, tiny_model_meta


def _classes() -> list[dict]:
    return [landmark.to_dict() for landmark in read_gazetteer(FIXTURES / "gazetteer.csv").values()]


def test_a_network_whose_width_disagrees_with_its_classes_is_refused(tmp_path):
    classes = _classes()
    path = tmp_path / "wrong.pt"
    net = torch.jit.script(TinyNet(len(classes) + 1).eval())
    save_model_file(net, tiny_model_meta(classes), path)
    model = LandmarkModel.load(path, "cpu")  # the metadata alone is fine
    message = f"outputs {len(classes) + 1} scores but its metadata lists {len(classes)} classes"
    with pytest.raises(ModelFormatError, match=message):
        _ = model.module
    with pytest.raises(ModelFormatError, match=message):
        model.warm_up(4)  # checked at the batch size it warms up for


def test_warm_up_loads_the_network_and_padding_changes_nothing_on_a_cpu(tiny_model_path):
    model = LandmarkModel.load(tiny_model_path, "cpu")
    model.warm_up(4)
    assert model._module is not None
    inputs = torch.rand(3, 3, 224, 224)
    padded, alone = model.probabilities(inputs, pad_to=8), model.probabilities(inputs)
    assert padded.shape == (3, len(model.classes))
    assert torch.equal(padded, alone)
