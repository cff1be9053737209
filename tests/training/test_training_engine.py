"""Training on a tiny synthetic set: the loss falls, a resumed run equals an uninterrupted one."""

from pathlib import Path

import torch
from synthetic import make_dataset, write_photo

from training.engine import TrainConfig, Trainer


def config(tmp_path: Path, data: Path, **overrides) -> TrainConfig:
    options = dict(data=data, arch="scratch", out=tmp_path / "model.pt",
                   run_dir=tmp_path / "run", cache_dir=tmp_path / "cache", img_size=32,
                   epochs=4, batch_size=8, lr=3e-3, val_fraction=0.25, seed=1, device="cpu")
    options.update(overrides)
    return TrainConfig(**options)


def test_a_short_run_makes_the_loss_go_down_and_writes_metrics(tmp_path: Path):
    data = make_dataset(tmp_path / "data")
    trainer = Trainer(config(tmp_path, data))
    history = trainer.fit()
    assert len(history) == 4
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert (tmp_path / "run" / "metrics.csv").read_text().startswith("epoch,lr,train_loss")
    assert (tmp_path / "run" / "metrics.json").is_file()
    assert (tmp_path / "run" / "checkpoint.ckpt").is_file()


def test_resume_continues_where_the_checkpoint_stopped(tmp_path: Path):
    data = make_dataset(tmp_path / "data")
    straight = Trainer(config(tmp_path / "a", data, epochs=2))
    straight.fit()
    first = Trainer(config(tmp_path / "b", data, epochs=2))
    first.config.epochs = 1  # stop after one epoch of the same two-epoch schedule
    first.fit()
    checkpoint = tmp_path / "b" / "run" / "checkpoint.ckpt"
    resumed = Trainer(config(tmp_path / "b", data, epochs=2, resume=checkpoint))
    history = resumed.fit()
    assert [row["epoch"] for row in history] == [1, 2]
    for key, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, msg=key)


def test_transfer_trains_on_cached_frozen_features_and_negatives(tmp_path: Path):
    data = make_dataset(tmp_path / "data", per_class=4)
    for i in range(4):
        write_photo(tmp_path / "negatives" / f"{i}.jpg", (128, 128, 128), i)
    trainer = Trainer(config(tmp_path, data, arch="efficientnet_lite0", img_size=64, epochs=2,
                             views=2, freeze=16, negatives=tmp_path / "negatives"))
    before = trainer.model.features[0][0].weight.clone()
    trainer.fit()
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2  # landmarks and negatives
    assert torch.equal(trainer.model.features[0][0].weight, before)  # frozen stem untouched
    assert trainer.export().is_file()


def test_two_runs_of_the_shipped_recipe_with_one_seed_give_identical_weights(tmp_path: Path):
    """Deterministic on a CPU from nothing: feature cache, augmentation, negatives, training."""
    data = make_dataset(tmp_path / "data", per_class=4)
    for i in range(4):
        write_photo(tmp_path / "negatives" / f"{i}.jpg", (128, 128, 128), i)
    states = []
    for run in ("first", "second"):  # each run builds its own cache
        trainer = Trainer(config(tmp_path / run, data, arch="efficientnet_lite0", img_size=64,
                                 epochs=2, views=2, freeze=16, negatives=tmp_path / "negatives"))
        trainer.fit()
        states.append(trainer.model.state_dict())
    for key, value in states[0].items():
        assert torch.equal(states[1][key], value), key
