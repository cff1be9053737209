"""Export: the TorchScript model file gives the eager outputs and loads without ``training``."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from synthetic import FIXTURES, make_dataset

from phototagger.imaging import PreprocessSpec
from phototagger.landmarks import read_gazetteer
from phototagger.model import LandmarkModel
from training import nets
from training.engine import TrainConfig, Trainer
from training.export import export_checkpoint, export_model, model_meta


@pytest.mark.parametrize("arch", ["scratch", "efficientnet_lite0"])
def test_exported_file_equals_the_eager_model(tmp_path: Path, arch: str):
    classes = list(read_gazetteer(FIXTURES / "gazetteer.csv").values())
    torch.manual_seed(0)
    model = nets.build(arch, len(classes), pretrained=False).eval()
    spec = PreprocessSpec(64, 72, (0.5,) * 3, (0.5,) * 3)
    meta = model_meta(arch, classes, spec, {"data": "synthetic"}, {}, temperature=1.5,
                      threshold=0.4)
    path = export_model(model, meta, tmp_path / "model.pt")

    loaded = LandmarkModel.load(path, device="cpu")
    batch = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        expected = torch.softmax(model(batch) / 1.5, -1)
    torch.testing.assert_close(loaded.probabilities(batch), expected, atol=1e-5, rtol=1e-5)
    assert [c.slug for c in loaded.classes] == [c.slug for c in classes]
    assert loaded.classes[-1].country is None  # the gazetteer's empty field survives
    assert (loaded.temperature, loaded.threshold, loaded.architecture) == (1.5, 0.4, arch)


def test_model_file_loads_without_the_training_package(tmp_path: Path):
    classes = list(read_gazetteer(FIXTURES / "gazetteer.csv").values())
    model = nets.build("scratch", len(classes)).eval()
    spec = PreprocessSpec(32, 37, (0.5,) * 3, (0.5,) * 3)
    path = export_model(model, model_meta("scratch", classes, spec, {}, {}), tmp_path / "m.pt")
    code = ("import sys; sys.modules['training'] = None\n"
            "from phototagger.model import LandmarkModel\n"
            f"print(len(LandmarkModel.load({str(path)!r}, device='cpu').classes))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=tmp_path, check=True)
    assert result.stdout.strip() == str(len(classes))


def test_export_rebuilds_a_checkpoint(tmp_path: Path):
    data = make_dataset(tmp_path / "data", per_class=4)
    trainer = Trainer(TrainConfig(data=data, arch="scratch", img_size=32, epochs=1, batch_size=8,
                                  out=tmp_path / "m.pt", run_dir=tmp_path / "run", device="cpu"))
    trainer.fit()
    path = export_checkpoint(tmp_path / "run" / "checkpoint.ckpt", tmp_path / "again.pt")
    batch = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = torch.softmax(trainer.model.eval()(batch), -1)
    torch.testing.assert_close(LandmarkModel.load(path).probabilities(batch), expected)
    assert LandmarkModel.load(path).meta["training"]["epochs"] == 1
