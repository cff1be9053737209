"""The command line: clear one-line errors for unusable data."""

from pathlib import Path

from click.testing import CliRunner

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
