"""Learning a landmark from a few photos: a tiny landmark set made here, a real SQLite index,
real JPEGs, the real tag writer, exiftool as the independent reader."""

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from colour_photos import colour_model, photo
from phototagger import cli, imaging, tags
from phototagger.errors import ConfigError
from phototagger.index import Library
from phototagger.index import tables as orm
from phototagger.model import LandmarkModel
from phototagger.scan.pipeline import Scanner, ScanOptions
from phototagger.vocabulary import KnownLandmarkError, forget, learn
from tests.tags.exiftool import exiftool_json, needs_exiftool
from tiny_model import build_tiny_model


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return colour_model(tmp_path_factory.mktemp("vocabulary-model"))


@pytest.fixture
def library(tmp_path):
    return Library(f"sqlite:///{tmp_path / 'index.sqlite3'}")


def library_of(tmp_path, kinds: dict[str, int]):
    root = tmp_path / "library"
    for kind, count in kinds.items():
        for i in range(count):
            photo(root / kind / f"{i}.jpg", kind, 1000 + i)
    return root


def teaching(tmp_path, kind="red", count=6):
    return [photo(tmp_path / "teach" / f"{kind}{i}.jpg", kind, 500 + i) for i in range(count)]


def scan(library, model, root, **options):
    return Scanner(library, model, ScanOptions(workers=0, **options)).run([root])


def state(library) -> dict[str, tuple]:
    with library.session() as session:
        rows = session.scalars(select(orm.Photo)).unique().all()
        return {f"{p.fs_path.split('/')[-2]}/{p.fs_path.split('/')[-1]}":
                (p.landmark_slug, p.suggested_slug, p.tag_state) for p in rows}


def test_learning_finds_the_other_photos_of_a_place_without_decoding_them(
        library, model, tmp_path, monkeypatch):
    root = library_of(tmp_path, {"red": 4, "blue": 3, "green": 3, "grey": 2})
    scan(library, model, root, write="none")
    before = state(library)
    decoded = []
    real_decode = imaging.decode
    monkeypatch.setattr(imaging, "decode", lambda *a, **k: decoded.append(1) or real_decode(
        *a, **k))
    result = learn(library, model, "Red Fort", teaching(tmp_path),
                   {"city": "Delhi", "country": "India", "latitude": 28.6562,
                    "longitude": 77.241})
    assert len(decoded) == 6  # the photos learned from, and no indexed one
    assert (result.landmark.slug, result.photos, result.added) == ("red-fort", 6, 6)
    assert result.agreement > 0.9 and result.outliers == []
    assert result.redecided.matching["red-fort"] == (4, 0)
    after = state(library)
    assert result.redecided.changed == sum(after[k] != v for k, v in before.items()) == 4
    # more photos of it move the red photos' scores, not their tags: nothing changed
    more = [photo(tmp_path / "more" / f"red{i}.jpg", "red", 700 + i) for i in range(3)]
    again = learn(library, model, "Red Fort", more, {})
    assert (again.added, again.redecided.changed) == (3, 0)
    assert state(library) == after
    assert {k for k, v in after.items() if v[0] == "red-fort"} == {f"red/{i}.jpg"
                                                                   for i in range(4)}
    assert {k: v for k, v in after.items() if not k.startswith("red/")} == {
        k: v for k, v in before.items() if not k.startswith("red/")}  # the others unchanged
    # the next scan knows it: a new red photo is tagged, the files get written
    photo(root / "red" / "new.jpg", "red", 2000)
    scan(library, model, root)
    assert tags.read_tags(root / "red" / "new.jpg").slug == "red-fort"
    assert tags.read_tags(root / "red" / "0.jpg").slug == "red-fort"
    assert tags.read_tags(root / "blue" / "0.jpg") is None or \
        tags.read_tags(root / "blue" / "0.jpg").slug != "red-fort"


@needs_exiftool
def test_forget_removes_exactly_the_tags_it_caused(library, model, tmp_path):
    root = library_of(tmp_path, {"red": 3, "green": 2})
    before = {p: exiftool_json(p) for p in sorted(root.rglob("*.jpg"))}
    scan(library, model, root)
    green = {p: exiftool_json(p) for p in sorted((root / "green").glob("*.jpg"))}
    learn(library, model, "Red Fort", teaching(tmp_path), {"country": "India"})
    scan(library, model, root)
    red = sorted((root / "red").glob("*.jpg"))
    assert exiftool_json(red[0]).get("XMP-dc:Subject") in ("Red Fort", ["Red Fort"])
    landmark, untagged, _ = forget(library, model, "red fort")
    assert (landmark.slug, untagged) == ("red-fort", 3)
    for path in red:  # back as they were before phototagger wrote in them
        assert "XMP-dc:Subject" not in exiftool_json(path)
        assert exiftool_json(path).keys() - before[path].keys() <= {"XMP-x:XMPToolkit"}
    for path, tagged in green.items():  # the model's own tags untouched
        assert exiftool_json(path).get("XMP-dc:Subject") == tagged.get("XMP-dc:Subject")
    with library.session() as session:
        assert session.get(orm.Landmark, "red-fort") is None
        assert session.scalar(select(orm.GalleryPhoto.id)) is None
    assert all(v[0] != "red-fort" and v[1] != "red-fort" for v in state(library).values())


def test_bad_input_to_learn(library, model, tmp_path):
    photos = teaching(tmp_path, count=5)
    (tmp_path / "teach" / "broken.jpg").write_bytes(b"not a photo")
    with pytest.raises(ConfigError, match="4 usable photos of Red Fort: learning a landmark "
                                          "needs at least 5"):
        learn(library, model, "Red Fort", [*photos[:4], tmp_path / "teach" / "broken.jpg"])
    with pytest.raises(ConfigError, match="coordinates out of range"):
        learn(library, model, "Red Fort", photos, {"latitude": 95.0, "longitude": 10.0})
    for name in ("Eiffel Tower", "tour eiffel"):  # its name, or another name of it
        with pytest.raises(ConfigError, match="one of the model's own landmarks"):
            learn(library, model, name, photos)
    with pytest.raises(ConfigError, match="6 of these 6 photos look like ordinary photos"):
        learn(library, model, "Grey Place", teaching(tmp_path / "grey", "grey"))
    # photos the model tags as one of its own landmarks (this one tags every photo), under
    # another name, would take its tags of that landmark over
    tags_all = LandmarkModel.load(build_tiny_model(tmp_path / "open.pt"), "cpu")
    with pytest.raises(KnownLandmarkError, match=r"5 of these 5 photos show \w.*, which the "
                                                 "model knows already: tag them with it"):
        learn(library, tags_all, "Paris Tower", photos)
    result = learn(library, model, "Red Fort", [tmp_path / "teach"])  # a folder
    assert result.photos == 5 and [p for p, _ in result.skipped] == [
        str(tmp_path / "teach" / "broken.jpg")]
    # a wrong photo among them is named
    wrong = photo(tmp_path / "more" / "oops.jpg", "blue", 9)
    result = learn(library, model, "Red Fort", [wrong])
    assert (result.photos, [source for source, _ in result.outliers]) == (6, [str(wrong)])
    assert learn(library, model, "Red Fort", photos).added == 0  # each photo counts once


def test_the_commands(model, tmp_path):
    root = library_of(tmp_path, {"red": 2, "green": 1})
    db = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    run = CliRunner().invoke
    common = ["--model", str(model.path), "--db", db]
    assert run(cli.main, ["scan", str(root), *common, "--workers", "0"]).exit_code == 0
    teach = teaching(tmp_path, count=5)
    (tmp_path / "teach" / "broken.jpg").write_bytes(b"not a photo")
    out = run(cli.main, ["learn", "Red Fort", str(tmp_path / "teach"), "--country", "India",
                         *common])
    assert out.exit_code == 1, out.output  # one photo skipped, named
    assert "learned Red Fort (India) from 5 photos (5 new)" in out.output
    assert "indexed photos of it now: 2 tagged, 0 suggested" in out.output
    assert f"skipped {tmp_path / 'teach' / 'broken.jpg'}: " in out.output
    out = run(cli.main, ["landmarks", *common])
    assert "     2  Red Fort  (India)  [learned from 5 photos]" in out.output
    unseen = photo(tmp_path / "elsewhere" / "red.jpg", "red", 77)
    out = run(cli.main, ["predict", str(unseen), "--model", str(model.path), "--db", db])
    assert "Red Fort" in out.output.splitlines()[1], out.output  # the decision's own words
    out = run(cli.main, ["predict", str(unseen), "--model", str(model.path)])
    assert "Red Fort" not in out.output  # the model alone does not know it
    out = run(cli.main, ["learn", "Red Fort", str(teach[0]), "--lat", "91", "--lon", "0",
                         *common])
    assert out.exit_code == 2 and out.output.count("\n") == 1 and "out of range" in out.output
    new = photo(tmp_path / "trip" / "falls.jpg", "blue", 3)
    assert run(cli.main, ["tag", str(new), "--landmark", "Niagara Falls", *common]).exit_code == 2
    out = run(cli.main, ["tag", str(new), "--landmark", "Niagara Falls", "--country", "Canada",
                         "--lat", "43.0896", "--lon", "-79.0849", *common])
    assert out.exit_code == 0, out.output
    assert tags.read_tags(new).slug == "niagara-falls"
    out = run(cli.main, ["landmarks", *common])
    assert "Niagara Falls  (Canada)  [learned from 0 photos, needs 5]" in out.output
    assert run(cli.main, ["scan", str(root), *common, "--workers", "0"]).exit_code == 0
    out = run(cli.main, ["forget", "Red Fort", *common])
    assert out.exit_code == 0 and "forgot Red Fort: its tags taken out of 2 files" in out.output


def test_a_photo_tagged_in_the_app_joins_the_learned_landmark_until_untagged(
        library, model, tmp_path):
    """The app's tag is the same as `tag`: a photo a person tags there with a learned
    landmark adds to what it was learnt from."""
    from phototagger.web import create_app

    root = library_of(tmp_path, {"blue": 1})
    scan(library, model, root, write="none")
    learn(library, model, "Red Fort", teaching(tmp_path))

    def gallery() -> int:
        with library.session() as session:
            return len(session.scalars(select(orm.GalleryPhoto.id)).all())

    before = gallery()
    with library.session() as session:
        pid = library.photo_at(session, next(root.rglob("*.jpg"))).id
    client = create_app(model=model, library=library).test_client()
    response = client.post(f"/api/photos/{pid}/tag", json={"landmark": "Red Fort",
                                                           "write": "none"})
    assert response.status_code == 200, response.json
    assert gallery() == before + 1
    # and a person's untag takes it out again: not a photo of it to learn from any more
    assert client.post(f"/api/photos/{pid}/untag", json={}).status_code == 200
    assert gallery() == before
