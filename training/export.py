"""Write a trained network as a phototagger model file, and prove the script matches the eager net.

The file is plain TorchScript plus ``phototagger.json`` (through ``phototagger.model``), so it
loads without this package installed.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from phototagger.errors import ModelFormatError
from phototagger.imaging import PreprocessSpec
from phototagger.landmarks import Landmark
from phototagger.model import save_model_file

VERSION = "1.0.0"


def model_meta(arch: str, classes: list[Landmark], spec: PreprocessSpec, training: dict,
               metrics: dict, temperature: float = 1.0, threshold: float = 0.5,
               version: str = VERSION) -> dict:
    """The metadata ``phototagger.model`` expects; calibration values are filled by evaluate."""
    return {
        "name": f"landmarks-{arch.replace('_', '-')}",
        "version": version,
        "architecture": arch,
        "classes": [landmark.to_dict() for landmark in classes],
        "preprocess": spec.to_dict(),
        "temperature": temperature,
        "threshold": threshold,
        "training": training,
        "metrics": metrics,
    }


def script(model: nn.Module, input_size: int, atol: float = 1e-4) -> torch.jit.ScriptModule:
    """TorchScript of ``model`` in eval mode, checked to give the eager outputs on a probe batch."""
    model = model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is the shipped format
        scripted = torch.jit.script(model)
    probe = torch.randn(2, 3, input_size, input_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = model(probe), scripted(probe)
    torch.testing.assert_close(got, expected, atol=atol, rtol=1e-4)
    return scripted


def export_model(model: nn.Module, meta: dict, path: str | Path) -> Path:
    save_model_file(script(model, meta["preprocess"]["input_size"]), meta, path)
    return Path(path)


def export_checkpoint(checkpoint: str | Path, out: str | Path) -> Path:
    """Rebuild the network of a training checkpoint and export it (before calibration)."""
    from training import nets
    from training.engine import TrainConfig, Trainer

    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    config = TrainConfig(**{k: v for k, v in state["config"].items() if k != "resume"})
    trainer = Trainer(config)
    trainer.model = nets.build(config.arch, len(state["classes"]), pretrained=False)
    trainer.model.load_state_dict(state["model"])
    trainer.history, trainer.seconds = state["history"], state["seconds"]
    return trainer.export(out)


def rescript(model_file: str | Path, out: str | Path, version: str | None = None) -> Path:
    """Script a model file's weights again with this package's network code; metadata kept.

    A faster ``forward`` reaches models trained before it without retraining. The rebuilt
    network must give the old file's outputs on a probe batch, or nothing is written.
    """
    from phototagger.model import read_meta
    from training import nets

    meta = read_meta(model_file)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        old = torch.jit.load(str(model_file), map_location="cpu").eval()
    try:
        model = nets.build(meta["architecture"], len(meta["classes"]), pretrained=False)
        model.load_state_dict(old.state_dict())
    except (ValueError, RuntimeError):  # an architecture this code lacks, or other weights
        raise ModelFormatError(
            f"{model_file} cannot be rebuilt as {meta['architecture']} by this code"
        ) from None
    size = meta["preprocess"]["input_size"]
    scripted = script(model, size)
    probe = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        try:
            torch.testing.assert_close(scripted(probe), old(probe), atol=1e-4, rtol=1e-4)
        except AssertionError:
            raise ModelFormatError(f"this network code does not reproduce {model_file}") from None
    if version is not None:
        meta["version"] = version
    save_model_file(scripted, meta, out)
    return Path(out)
