"""The command line: clear one-line errors for unusable data."""

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from synthetic import make_dataset, write_photo

from phototagger.model import LandmarkModel
from training.__main__ import cli


def test_train_on_an_empty_folder_says_why(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(cli, ["train", "--data", str(tmp_path / "empty"), "--out",
                                      str(tmp_path / "m.pt")])
    assert result.exit_code == 1
    assert "at least two sub-folders" in result.output


def test_train_on_a_missing_folder_says_why(tmp_path: Path):
    result = CliRunner().invoke(cli, ["train", "--data", str(tmp_path / "nope"), "--out",
                                      str(tmp_path / "m.pt")])
    assert result.exit_code == 1
    assert "data folder not found" in result.output


def test_one_command_trains_calibrates_and_writes_a_loadable_model(tmp_path: Path):
    data = make_dataset(tmp_path / "data", per_class=6)
    negatives = tmp_path / "negatives"
    for i in range(4):
        write_photo(negatives / "scenes" / f"grey{i}.jpg", (128, 128, 128), i)
        write_photo(negatives / "documents" / f"white{i}.jpg", (235, 235, 235), 10 + i)
    out = tmp_path / "model.pt"
    result = CliRunner().invoke(cli, [
        "train", "--data", str(data), "--arch", "scratch", "--img-size", "32", "--epochs", "2",
        "--batch-size", "8", "--val-fraction", "0.34", "--device", "cpu", "--out", str(out),
        "--run-dir", str(tmp_path / "run"), "--negatives", str(negatives),
        "--plots", str(tmp_path / "plots")])
    assert result.exit_code == 0, result.output
    assert "3 landmarks, 12 training and 6 validation photos (split seed 0" in result.output
    assert "top-1" in result.output and "threshold" in result.output
    model = LandmarkModel.load(out)
    assert model.meta["metrics"]["val_images"] == 6
    assert model.meta["metrics"]["negatives"] == 4  # the half held out of training
    assert model.meta["training"]["negatives_trained_on"] == 4
    assert model.meta["training"]["negatives_folders"] == ["documents", "scenes"]
    # Then the reference photos and the open-set margins, fitted on kinds held out in turn.
    assert model.meta["format_version"] == 2
    evidence = model.meta["evidence"]
    assert evidence["references"] == 12 and evidence["ordinary_references"] == 4
    assert evidence["tag_margin"] >= evidence["suggest_margin"]
    assert evidence["tag_margin"] < 2  # fitted, not the placeholder that tags nothing
    report = json.loads((tmp_path / "plots" / "openset.json").read_text())
    assert set(report["held_out_kinds"]) == {"documents", "scenes"}
    assert model.meta["metrics"]["open_set"]["known_tagged_right"] == report["chosen"][
        "known_tagged_right"]
    assert model.meta["training"]["split_seed"] == 0
    assert (tmp_path / "plots" / "precision_coverage.png").is_file()


def test_without_the_train_extra_training_says_what_to_install(tmp_path: Path):
    """The default install has no torchvision: `python -m training` says so in one line."""
    without = ("import sys; sys.modules['torchvision'] = None\n"
               "from training.__main__ import main; main()")
    done = subprocess.run(
        [sys.executable, "-c", without, "train", "--data", str(tmp_path), "--out",
         str(tmp_path / "m.pt")],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 1
    assert done.stderr == (
        "python -m training: error: torchvision is not installed: training needs the train"
        " extra (pip install 'phototagger[train]', or -e '.[train]' in a clone)\n")
