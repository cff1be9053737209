"""Every scanned photo keeps its embedding in the index, keyed by the network that made it."""

import warnings

import numpy as np
import pytest
import torch
from sqlalchemy import select

from images import write_jpeg
from phototagger import search
from phototagger.imaging import load_input
from phototagger.index import Library
from phototagger.index import tables as orm
from phototagger.model import LandmarkModel, network_id, read_meta, save_model_file
from phototagger.scan.pipeline import Scanner, ScanOptions
from tiny_model import build_tiny_model


@pytest.fixture
def library(tmp_path):
    return Library(f"sqlite:///{tmp_path / 'index.sqlite3'}")


@pytest.fixture(scope="module")
def model(tiny_model_path):
    return LandmarkModel.load(tiny_model_path, "cpu")


def scan(library, model, root, **options):
    return Scanner(library, model, ScanOptions(workers=0, **options)).run([root])


def stored(library) -> dict[str, tuple[str, np.ndarray]]:
    with library.session() as session:
        rows = session.execute(
            select(orm.Photo.path, orm.Embedding.network, orm.Embedding.vector)
            .join(orm.Embedding, orm.Embedding.photo_id == orm.Photo.id)
        ).all()
    return {path.rsplit("/", 1)[1]: (network, search.decode([vector])[0])
            for path, network, vector in rows}


def test_the_scores_bring_the_files_own_evidence_and_the_embedding(model, tmp_path):
    """One forward pass: the evidence computed from the embedding is what the file's own
    ``forward`` returns."""
    photos = [write_jpeg(tmp_path / f"{i}.jpg", seed=i) for i in range(5)]
    batch = torch.stack([load_input(p, model.preprocess)[0] for p in photos])
    scores = model.scores(batch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        logits, similarity, ordinary = torch.jit.load(str(model.path))(batch)
    assert torch.allclose(scores.logits, logits, atol=1e-5)
    assert torch.allclose(scores.similarity, similarity, atol=1e-5)
    assert torch.allclose(scores.ordinary, ordinary, atol=1e-5)
    assert scores.embeddings.shape == (5, model.evidence["dimensions"])
    assert torch.allclose(scores.embeddings.norm(dim=1), torch.ones(5), atol=1e-5)


def test_a_scan_stores_each_photos_embedding_once(library, model, tmp_path):
    root = tmp_path / "photos"
    for i in range(3):
        write_jpeg(root / f"{i}.jpg", seed=i)
    (root / "broken.jpg").write_bytes(b"not an image")
    scan(library, model, root)
    first = stored(library)
    assert set(first) == {"0.jpg", "1.jpg", "2.jpg"}  # the broken file has none
    for network, vector in first.values():
        assert network == model.network_id
        assert vector.dtype == np.float32 and vector.shape == (model.evidence["dimensions"],)
        assert abs(np.linalg.norm(vector) - 1) < 2e-3  # float16 in the index
    batch = load_input(root / "1.jpg", model.preprocess)[0].unsqueeze(0)
    expected = model.scores(batch).embeddings[0].numpy()
    assert np.allclose(first["1.jpg"][1], expected, atol=2e-3)
    scan(library, model, root, force=True)  # predicted again: replaced, not added
    with library.session() as session:
        assert session.query(orm.Embedding).count() == 3


def test_a_photo_scanned_before_gets_its_embedding_when_next_decoded(library, model, tmp_path):
    root = tmp_path / "photos"
    write_jpeg(root / "old.jpg", seed=1)
    write_jpeg(root / "older.jpg", seed=2)
    scan(library, model, root)
    with library.session() as session:  # as an index from before embeddings has them
        session.query(orm.Embedding).delete()
        session.commit()
    scan(library, model, root)  # unchanged: not decoded, so still none
    assert stored(library) == {}
    write_jpeg(root / "old.jpg", seed=3)  # changed: decoded again
    scan(library, model, root)
    assert set(stored(library)) == {"old.jpg"}
    scan(library, model, root, force=True)
    assert set(stored(library)) == {"old.jpg", "older.jpg"}


def test_the_network_id_ignores_the_files_metadata(tiny_model_path, tmp_path):
    """A new version that changes only names or margins keeps the library's embeddings; a
    different network does not."""
    meta = read_meta(tiny_model_path)
    meta["version"], meta["threshold"] = "0.0.2", 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(tiny_model_path))
    save_model_file(module, meta, tmp_path / "renamed.pt")
    assert network_id(tmp_path / "renamed.pt") == network_id(tiny_model_path)
    torch.manual_seed(1)
    other = build_tiny_model(tmp_path / "other.pt", version="0.0.1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        changed = torch.jit.load(str(other))
    with torch.no_grad():
        changed.projection.mul_(-1)
    save_model_file(changed, read_meta(other), tmp_path / "changed.pt")
    assert network_id(tmp_path / "changed.pt") != network_id(tiny_model_path)
