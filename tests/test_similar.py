"""``phototagger similar``: the library's photos most alike one photo, from the embeddings a
real scan stored in a real SQLite index."""

import json

import pytest

from colour_photos import colour_model, photo
from commands import run
from phototagger import imaging


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """A scanned library of red, blue and grey photos, and the command's common options."""
    folder = tmp_path_factory.mktemp("similar")
    model = colour_model(folder / "model")
    root = folder / "library"
    for kind, count in {"red": 4, "blue": 3, "grey": 3}.items():
        for i in range(count):
            photo(root / kind / f"{i}.jpg", kind, 1000 + i)
    common = ["--model", model.path, "--db", f"sqlite:///{folder / 'index.sqlite3'}"]
    code, _, err = run("scan", root, *common, "--workers", "0", "--write", "none")
    assert code == 0, err
    return folder, root, common


def test_similar_ranks_the_library_by_its_stored_embeddings(indexed, monkeypatch):
    folder, root, common = indexed
    decoded = []
    monkeypatch.setattr(imaging, "decode", lambda *a, **k: decoded.append(a))
    code, out, err = run("similar", root / "red" / "0.jpg", "--limit", "3", "--format", "json",
                         *common)
    assert code == 0, err
    rows = json.loads(out)
    assert {row["path"] for row in rows} == {str(root / "red" / f"{i}.jpg") for i in (1, 2, 3)}
    similarities = [row["similarity"] for row in rows]
    assert similarities == sorted(similarities, reverse=True) and similarities[-1] > 0.9
    assert decoded == []  # an indexed photo: its stored embedding, nothing decoded
    code, out, _ = run("similar", root / "blue" / "2.jpg", "--limit", "2", "--format", "paths",
                       *common)
    assert set(out.splitlines()) == {str(root / "blue" / "0.jpg"), str(root / "blue" / "1.jpg")}
    code, out, _ = run("similar", root / "grey" / "0.jpg", "--format", "csv", *common)
    assert out.splitlines()[0].startswith("similarity,path,landmark,")
    assert len(out.splitlines()) == 1 + 9  # every other photo, the limit being 10


def test_similar_embeds_a_photo_the_index_does_not_know(indexed, tmp_path):
    _, root, common = indexed
    outside = photo(tmp_path / "new" / "blue.jpg", "blue", 42)
    code, out, err = run("similar", outside, "--limit", "3", *common)
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 3 and all("/blue/" in line for line in lines)
    assert float(lines[0].split("\t")[0]) >= float(lines[2].split("\t")[0])


def test_bad_input_to_similar(indexed, tmp_path):
    folder, _, common = indexed
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a photo")
    code, _, err = run("similar", broken, *common)
    assert code == 1 and err.count("\n") == 1 and str(broken) in err
    code, _, err = run("similar", tmp_path / "nowhere.jpg", *common)
    assert code == 2 and err == f"phototagger: error: no such file, and none in the index: " \
        f"{tmp_path / 'nowhere.jpg'}\n"
    code, _, err = run("similar", broken, "--null", *common)
    assert code == 2 and "--null goes with --format paths" in err
    code, _, err = run("similar", broken, "--model", folder / "model" / "model.pt", "--db",
                       f"sqlite:///{tmp_path / 'none.sqlite3'}")
    assert code == 2 and "no index at" in err
