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


@pytest.mark.parametrize("size", [7, 8])
@pytest.mark.parametrize("kernel", [3, 5])
def test_stride_one_layers_pad_like_tensorflow_same(size: int, kernel: int):
    """The stride-1 layers use the convolution's own padding: it must be TensorFlow's SAME."""
    from training.nets.efficientnet_lite import SameConv, _conv_bn

    torch.manual_seed(0)
    layer = _conv_bn(4, 4, kernel, stride=1, groups=4, act=False)[0]
    same = SameConv(4, 4, kernel, 1, groups=4)
    same.weight = layer.weight
    x = torch.randn(2, 4, size, size)
    torch.testing.assert_close(layer(x), same(x))


def test_rescript_keeps_weights_metadata_and_outputs(tmp_path: Path):
    from training.export import rescript

    classes = list(read_gazetteer(FIXTURES / "gazetteer.csv").values())
    torch.manual_seed(0)
    model = nets.build("efficientnet_lite0", len(classes), pretrained=False).eval()
    spec = PreprocessSpec(64, 72, (0.5,) * 3, (0.5,) * 3)
    meta = model_meta("efficientnet_lite0", classes, spec, {"data": "synthetic"},
                      {"val_top1": 0.5}, temperature=1.5, threshold=0.4)
    old = LandmarkModel.load(export_model(model, meta, tmp_path / "old.pt"), device="cpu")
    new = LandmarkModel.load(rescript(old.path, tmp_path / "new.pt", version="1.0.1"), "cpu")

    batch = torch.randn(3, 3, 64, 64)
    torch.testing.assert_close(new.probabilities(batch), old.probabilities(batch))
    assert new.version == "1.0.1" and new.model_id != old.model_id
    assert {k: v for k, v in new.meta.items() if k != "version"} == {
        k: v for k, v in old.meta.items() if k != "version"
    }
    # In place: the file is replaced only once the new one reads back.
    rescript(new.path, new.path, version="1.0.2")
    again = LandmarkModel.load(new.path, "cpu")
    assert again.version == "1.0.2"
    torch.testing.assert_close(again.probabilities(batch), old.probabilities(batch))
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_rescript_refuses_a_file_whose_architecture_it_cannot_rebuild(tmp_path: Path):
    from phototagger.errors import ModelFormatError
    from training.export import rescript

    classes = list(read_gazetteer(FIXTURES / "gazetteer.csv").values())
    spec = PreprocessSpec(32, 37, (0.5,) * 3, (0.5,) * 3)
    scratch = nets.build("scratch", len(classes)).eval()
    # A scratch network whose metadata claims to be Lite0: its weights fit no Lite0.
    path = export_model(scratch, model_meta("efficientnet_lite0", classes, spec, {}, {}),
                        tmp_path / "liar.pt")
    with pytest.raises(ModelFormatError, match="cannot be rebuilt"):
        rescript(path, tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()
