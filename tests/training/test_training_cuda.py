"""Training on CUDA (autocast, gradient scaling): skipped where there is no GPU, as in CI."""

import pytest
import torch
from synthetic import make_dataset

from phototagger.model import LandmarkModel
from training.engine import TrainConfig, Trainer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


def test_training_on_cuda_uses_autocast_and_exports_a_model_that_loads_on_cpu(tmp_path):
    data = make_dataset(tmp_path / "data")
    trainer = Trainer(TrainConfig(
        data=data, arch="scratch", out=tmp_path / "model.pt", run_dir=tmp_path / "run",
        cache_dir=tmp_path / "cache", img_size=32, epochs=4, batch_size=8, lr=3e-3,
        val_fraction=0.25, seed=1, device="cuda"))
    history = trainer.fit()
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    model = LandmarkModel.load(trainer.export(), "cpu")
    assert model.probabilities(torch.zeros(1, 3, 32, 32)).shape == (1, 3)
