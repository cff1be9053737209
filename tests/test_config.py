"""The config file: a real TOML file read by the real commands, the command line winning."""

import json

import pytest

from commands import run
from images import write_jpeg
from phototagger import tags


@pytest.fixture
def library(tmp_path, tiny_model_path, monkeypatch):
    root = tmp_path / "Pictures"
    write_jpeg(root / "rome" / "a.jpg", seed=1)
    write_jpeg(root / "drafts" / "b.jpg", seed=2)
    config = tmp_path / "config.toml"
    monkeypatch.setenv("PHOTOTAGGER_CONFIG", str(config))
    monkeypatch.delenv("PHOTOTAGGER_DB", raising=False)
    return {"root": root, "model": str(tiny_model_path), "config": config, "tmp": tmp_path}


def test_a_scan_takes_its_defaults_from_the_file(library):
    index = library["tmp"] / "from-the-file.sqlite3"
    library["config"].write_text(
        f'db = "{index}"\nwrite = "sidecar"\nexclude = ["drafts"]\nposition = false\n'
        "threshold = 0\nworkers = 0\n"
    )
    code, out, err = run("scan", library["root"], "--model", library["model"], "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["found"], summary["tagged"]) == (1, 1)  # drafts/ excluded
    assert index.is_file()
    photo = library["root"] / "rome" / "a.jpg"
    written = tags.read_tags(photo)
    assert written.where == photo.with_name("a.jpg.xmp")  # a sidecar, as the file says
    assert not written.gps_written  # position = false
    code, out, _ = run("query", "--format", "paths")  # query reads the same index
    assert out.splitlines() == [str(photo)]


def test_the_command_line_wins_over_the_file(library):
    index = library["tmp"] / "index.sqlite3"
    library["config"].write_text(f'db = "{index}"\nwrite = "sidecar"\nexclude = ["drafts"]\n')
    code, out, err = run("scan", library["root"], "--model", library["model"], "--workers", 0,
                         "--write", "embed", "--exclude", "nothing", "--threshold", 0, "--json")
    assert code == 0, err
    assert json.loads(out)["found"] == 2  # the command line's --exclude replaced the file's
    photo = library["root"] / "rome" / "a.jpg"
    assert tags.read_tags(photo).where == photo


def test_config_shows_each_setting_and_where_it_came_from(library, monkeypatch):
    library["config"].write_text('threshold = 0.9\nexclude = ["drafts", "*.tmp.jpg"]\n')
    monkeypatch.setenv("PHOTOTAGGER_DB", str(library["tmp"] / "env.sqlite3"))
    code, out, err = run("config", "--write", "sidecar")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"# config file: {library['config']}"
    assert f'db = "sqlite:///{library["tmp"] / "env.sqlite3"}"  # $PHOTOTAGGER_DB' in lines
    assert "threshold = 0.9  # config file" in lines
    assert 'exclude = ["drafts", "*.tmp.jpg"]  # config file' in lines
    assert 'write = "sidecar"  # command line' in lines
    assert 'device = "auto"  # default' in lines
    assert "# workers: half the cores on a CPU, all but two with CUDA  (default)" in lines
    assert 'engine = "local"  # default' in lines


def test_the_platforms_config_folder_is_read_without_the_variable(library, monkeypatch):
    monkeypatch.delenv("PHOTOTAGGER_CONFIG")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(library["tmp"] / "xdg"))
    code, out, _ = run("config")
    assert out.splitlines()[0].endswith("(there is none)") and "# config file: " in out
    folder = library["tmp"] / "xdg" / "phototagger"
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text('device = "cpu"\n')
    code, out, _ = run("config")
    assert code == 0 and 'device = "cpu"  # config file' in out.splitlines()


@pytest.mark.parametrize(
    "text, message",
    [
        ("treshold = 0.9\n", "unknown setting 'treshold' (known: db, threshold, write, exclude,"
         " workers, device, position, engine, ray-address, ray-actors)"),
        ("threshold = 1.5\n", "threshold: 1.5 is not in the range 0<=x<=1."),
        ('threshold = "high"\n', "threshold must be a number, not \"high\""),
        ('write = "inside"\n', "write: 'inside' is not one of 'embed', 'sidecar', 'none'."),
        ('exclude = "drafts"\n', 'exclude must be a list, each a string, not "drafts"'),
        ("workers = 2.5\n", "workers must be a whole number, not 2.5"),
        ('position = "no"\n', 'position must be true or false, not "no"'),
        ("[scan]\nthreshold = 0.9\n", "unknown setting 'scan'"),
        ("threshold = \n", "not a TOML file: "),
    ],
)
def test_a_bad_file_is_a_one_line_error_before_anything_runs(library, text, message):
    library["config"].write_text(text)
    index = library["tmp"] / "index.sqlite3"
    code, out, err = run("scan", library["root"], "--model", library["model"], "--db", index)
    assert (code, out) == (2, "")
    assert err.startswith(f"phototagger: error: {library['config']}: {message}")
    assert len(err.splitlines()) == 1
    assert not index.exists()


def test_a_config_file_the_variable_names_must_exist(library):
    code, _, err = run("config")
    assert code == 2
    assert err == (f"phototagger: error: no config file at {library['config']}"
                   " (named by $PHOTOTAGGER_CONFIG)\n")
