"""The CUDA paths: skipped where there is no GPU (CI), run on one whenever a GPU is lent.

They compare against the CPU, which every other test covers: the same files, the same model,
the same answers (fp16 autocast allows small differences in the probabilities).
"""

from pathlib import Path

import pytest
import torch
from sqlalchemy import select

from images import write_jpeg
from phototagger import config
from phototagger.imaging import load_input
from phototagger.index import Library
from phototagger.index import tables as orm
from phototagger.model import LandmarkModel
from phototagger.scan.pipeline import Scanner, ScanOptions

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")

CAMERA_PHOTOS = sorted((Path(__file__).parent / "fixtures" / "exif").glob("*.jpg"))


def test_shipped_model_gives_the_same_answers_on_cuda_as_on_cpu():
    cpu = LandmarkModel.load(config.DEFAULT_MODEL, "cpu")
    cuda = LandmarkModel.load(config.DEFAULT_MODEL, "cuda")
    assert cuda.device.type == "cuda"
    batch = torch.stack([load_input(path, cpu.preprocess)[0] for path in CAMERA_PHOTOS])
    on_cpu, on_cuda = cpu.probabilities(batch), cuda.probabilities(batch.pin_memory())
    assert on_cuda.device.type == "cpu" and on_cuda.dtype == torch.float32
    assert torch.equal(on_cpu.argmax(-1), on_cuda.argmax(-1))
    assert (on_cpu - on_cuda).abs().max() < 0.02


def _scan(tmp_path: Path, root: Path, device: str, name: str) -> dict[str, tuple]:
    library = Library(f"sqlite:///{tmp_path / name}")
    model = LandmarkModel.load(config.DEFAULT_MODEL, device)
    summary = Scanner(library, model, ScanOptions(workers=2, batch_size=4, write="none")).run(
        [root])
    assert summary.failed == []
    with library.session() as session:
        rows = session.scalars(select(orm.Photo)).unique().all()
        best = {row: next(p for p in row.predictions if p.rank == 0) for row in rows}
        return {Path(row.fs_path).name: (row.landmark_slug, top.slug, top.probability)
                for row, top in best.items()}


def test_a_scan_on_cuda_pins_batches_and_records_what_the_cpu_scan_records(tmp_path):
    root = tmp_path / "photos"
    for index in range(6):
        write_jpeg(root / f"synthetic-{index}.jpg", seed=index)
    for path in CAMERA_PHOTOS:
        (root / path.name).write_bytes(path.read_bytes())
    on_cpu = _scan(tmp_path, root, "cpu", "cpu.sqlite3")
    on_cuda = _scan(tmp_path, root, "cuda", "cuda.sqlite3")
    assert on_cpu.keys() == on_cuda.keys() and len(on_cpu) == 6 + len(CAMERA_PHOTOS)
    for name, (tagged, best, probability) in on_cpu.items():
        assert on_cuda[name][:2] == (tagged, best), name
        assert abs(on_cuda[name][2] - probability) < 0.02, name


def test_a_short_batch_runs_padded_to_the_scans_shape_and_keeps_its_own_rows():
    model = LandmarkModel.load(config.DEFAULT_MODEL, "cuda")
    batch = torch.stack([load_input(path, model.preprocess)[0] for path in CAMERA_PHOTOS[:3]])
    model.warm_up(8)  # loads the network, which is then watched: which shapes does it get?
    network, shapes = model._module, []

    def watched(inputs):
        shapes.append(tuple(inputs.shape))
        return network(inputs)

    model._module = watched
    padded, alone = model.probabilities(batch, pad_to=8), model.probabilities(batch)
    assert [rows for rows, *_ in shapes] == [8, 3]  # padded to 8, then the batch as it is
    assert padded.shape == alone.shape == (3, len(model.classes))
    assert torch.equal(padded.argmax(-1), alone.argmax(-1))
    assert (padded - alone).abs().max() < 0.01
