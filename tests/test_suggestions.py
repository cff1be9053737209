"""Suggestions, re-decisions and what reaches a file: the decision as a scan applies it."""

from __future__ import annotations

import json
import shutil

import pytest

from commands import run
from images import write_jpeg
from phototagger import tags
from tests.tags.exiftool import exiftool_json, needs_exiftool
from tiny_model import OPEN_GATE, build_tiny_model

#: Every answer plausible, none verified: the fixture network with margins none can reach.
UNVERIFIED = {"tag_margin": 3.0, "suggest_margin": -4.0}



@pytest.fixture
def env(tmp_path, monkeypatch):
    root = tmp_path / "Pictures"
    for seed, name in enumerate(("a.jpg", "b.jpg", "c.jpg"), start=1):
        write_jpeg(root / name, seed=seed)
    monkeypatch.setenv("PHOTOTAGGER_DB", str(tmp_path / "index.sqlite3"))
    return {"root": root, "tmp": tmp_path, "before": {p.name: p.read_bytes()
                                                     for p in root.iterdir()}}


def model_with(tmp_path, name: str, version: str = "0.0.1", **evidence) -> str:

    path = tmp_path / f"{name}.pt"
    build_tiny_model(path, version=version)
    if evidence:  # the same network, other margins: a new model file
        import torch

        from phototagger.model import read_meta, save_model_file

        meta = read_meta(path)
        meta["evidence"] = {**meta["evidence"], **OPEN_GATE, **evidence}
        module = torch.jit.load(str(path))
        save_model_file(module, {k: v for k, v in meta.items() if not k.startswith("format")},
                        path)
    return str(path)


@needs_exiftool
def test_a_suggestion_never_reaches_the_file_and_confirming_it_writes_it(env):
    model = model_with(env["tmp"], "unsure", **UNVERIFIED)
    code, out, err = run("scan", env["root"], "--model", model, "--workers", 0, "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["tagged"], summary["suggested"]) == (0, 3)
    for path in env["root"].iterdir():
        assert path.read_bytes() == env["before"][path.name]  # not a byte changed
        assert not any(key.startswith(("XMP-phototagger", "GPS")) for key in exiftool_json(path))
    assert not list(env["root"].glob("*.xmp"))
    code, out, _ = run("query", "--suggested", "--format", "json")
    suggested = json.loads(out)
    assert len(suggested) == 3 and {row["state"] for row in suggested} == {"suggested"}
    assert run("query", "--format", "paths")[1] == ""  # nothing is tagged
    photo = env["root"] / "a.jpg"
    code, out, _ = run("info", photo)
    suggestion = next(line for line in out.splitlines() if line.startswith("suggested: "))
    assert "not written into the file" in suggestion
    why = next(line for line in out.splitlines() if line.startswith("why: "))
    assert why.endswith("against 3.00 needed): a suggestion")

    name = next(row["landmark"] for row in suggested if row["path"] == str(photo))
    code, out, err = run("tag", photo, "--landmark", name, "--model", model)
    assert code == 0, err
    read = exiftool_json(photo)
    assert read["XMP-phototagger:Source"] == "person"
    assert name in str(read.get("XMP-dc:Subject"))
    code, out, _ = run("query", "--state", "person", "--format", "paths")
    assert out.splitlines() == [str(photo)]
    assert len(json.loads(run("query", "--suggested", "--format", "json")[1])) == 2
    # A rejected suggestion stays rejected: the next scan neither tags nor suggests it.
    other = env["root"] / "b.jpg"
    assert run("untag", other)[0] == 0
    whys = [line for line in run("info", other)[1].splitlines() if line.startswith("why: ")]
    assert whys == ["why: no landmark: a person removed the tag"]  # not the old suggestion
    whys = [line for line in run("info", photo)[1].splitlines() if line.startswith("why: ")]
    assert whys == [f"why: {name}: tagged by a person"]
    run("scan", env["root"], "--model", model, "--workers", 0, "--force")
    rows = {row["path"]: row for row in json.loads(run("query", "--state", "all",
                                                       "--format", "json")[1])}
    assert rows[str(other)]["state"] == "removed" and rows[str(other)]["landmark"] is None


def test_every_state_can_be_browsed(env):
    model = model_with(env["tmp"], "unsure", **UNVERIFIED)
    assert run("scan", env["root"], "--model", model, "--workers", 0)[0] == 0
    assert run("untag", env["root"] / "c.jpg")[0] == 0
    listed = {state: run("query", "--state", state, "--format", "paths")[1].splitlines()
              for state in ("tagged", "suggested", "none", "person", "all")}
    names = {state: sorted(p.rsplit("/", 1)[1] for p in paths) for state, paths in listed.items()}
    assert names == {"tagged": [], "suggested": ["a.jpg", "b.jpg"], "none": ["c.jpg"],
                     "person": ["c.jpg"], "all": ["a.jpg", "b.jpg", "c.jpg"]}


def test_a_new_model_takes_back_exactly_the_tags_it_no_longer_verifies(env):
    """Model 0.0.1 tags all three; 0.0.2 (the same network, a stricter gate) verifies none:
    its scan takes phototagger's tags back, leaving each file as it was, and a person's tag
    stays where it is."""
    old = model_with(env["tmp"], "old", "0.0.1")
    new = model_with(env["tmp"], "new", "0.0.2", **UNVERIFIED)
    assert json.loads(run("scan", env["root"], "--model", old, "--workers", 0, "--json")[1])[
        "tagged"] == 3
    persons = env["root"] / "c.jpg"
    assert run("tag", persons, "--landmark", "colosseum", "--model", old)[0] == 0
    written = persons.read_bytes()
    code, out, err = run("scan", env["root"], "--model", new, "--workers", 0, "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["new_model"], summary["untagged"], summary["suggested"]) == (3, 2, 2)
    for name in ("a.jpg", "b.jpg"):
        assert (env["root"] / name).read_bytes() == env["before"][name]
    assert persons.read_bytes() == written and tags.read_tags(persons).source == "person"


def test_a_format_1_model_file_only_suggests_and_says_so(env):
    """The documented behaviour of a model file without reference photos: it loads, with a
    warning, and what it says is a suggestion, never written into a file."""
    path = env["tmp"] / "old-format.pt"
    build_tiny_model(path, format_version=1)
    code, out, err = run("scan", env["root"], "--model", path, "--workers", 0, "--json")
    assert code == 0
    assert "format 1, without reference photos" in err and "suggestions only" in err
    summary = json.loads(out)
    assert (summary["tagged"], summary["suggested"]) == (0, 3)
    assert all(p.read_bytes() == env["before"][p.name] for p in env["root"].iterdir())
    code, out, _ = run("predict", env["root"] / "a.jpg", "--model", path)
    assert "no reference photos to check it against: a suggestion only" in out


@needs_exiftool
def test_no_position_writes_the_landmark_without_an_estimated_gps_position(env):
    model = model_with(env["tmp"], "open")
    code, _, err = run("scan", env["root"], "--model", model, "--workers", 0, "--no-position")
    assert code == 0, err
    for path in env["root"].glob("*.jpg"):
        read = exiftool_json(path)
        assert read["XMP-phototagger:Source"] == "model"
        assert not any(key.startswith("GPS:") or "GPSLatitude" in key for key in read)
    shutil.rmtree(env["root"])
