"""How long do ``learn`` and the re-decision of a large index from stored embeddings take?

Prints figures; never passes or fails. Run from the repository root:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/redecide.py [--photos 100000] [--learn DIR]

Builds a SQLite index of ``--photos`` synthetic photos (each with five predictions of the
shipped model and a random unit embedding, 2 % of them near one place), learns that place
from 8 embeddings near it, and times ``vocabulary.redecide``. With ``--learn DIR`` (8 or so
real photos of a landmark) it also times ``phototagger learn`` itself, as a command, against
that index: decoding and embedding the photos, then the re-decision.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import insert

from phototagger import config, search
from phototagger.decision import Policy
from phototagger.index import Library
from phototagger.index import tables as orm
from phototagger.model import LandmarkModel
from phototagger.vocabulary import redecide


def build(library: Library, model: LandmarkModel, count: int, rng) -> np.ndarray:
    """The synthetic index; returns the place's centre."""
    dims = int(model.evidence["dimensions"])
    centre = rng.standard_normal(dims).astype(np.float32)
    centre /= np.linalg.norm(centre)
    with library.session() as session:
        model_pk = library.ensure_model(session, model).id
        slugs = [lm.slug for lm in model.classes]
        for start in range(0, count, 10_000):
            ids = range(start + 1, min(count, start + 10_000) + 1)
            session.execute(insert(orm.Photo), [
                {"id": i, "path": f"/library/{i // 1000}/{i}.jpg", "status": "ok",
                 "detail": 0.3, "decision": "below_threshold"} for i in ids])
            vectors = rng.standard_normal((len(ids), dims)).astype(np.float32)
            near = rng.random(len(ids)) < 0.02
            vectors[near] = centre + 0.05 * vectors[near]
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            session.execute(insert(orm.Embedding), [
                {"photo_id": i, "network": model.network_id, "vector": search.encode(v)}
                for i, v in zip(ids, vectors, strict=True)])
            session.execute(insert(orm.Prediction), [
                {"photo_id": i, "model_pk": model_pk, "rank": rank,
                 "slug": slugs[(i + rank) % len(slugs)], "probability": 0.3 / (rank + 1),
                 "similarity": 0.2, "ordinary": 0.1}
                for i in ids for rank in range(5)])
        session.commit()
    return centre


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=100_000)
    parser.add_argument("--learn", type=Path, help="a folder of real photos to learn from")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    model = LandmarkModel.load(config.DEFAULT_MODEL, "cpu")
    folder = Path(tempfile.mkdtemp(prefix="redecide-"))
    url = f"sqlite:///{folder / 'index.sqlite3'}"
    library = Library(url)
    started = time.perf_counter()
    centre = build(library, model, args.photos, rng)
    print(f"built an index of {args.photos:,} photos in {time.perf_counter() - started:.1f} s")
    with library.session() as session:
        row = orm.Landmark(slug="synthetic-place", name="Synthetic Place", aliases=[],
                           learned=True)
        session.add(row)
        session.flush()
        for v in centre + 0.05 * rng.standard_normal((8, len(centre))):
            session.add(orm.GalleryPhoto(slug=row.slug, network=model.network_id,
                                         source="synthetic", vector=search.encode(
                                             v / np.linalg.norm(v))))
        session.commit()
    for attempt in ("first (the place's photos change)", "again (nothing changes)"):
        with library.session() as session:
            started = time.perf_counter()
            result = redecide(library, session, model, Policy.of(model))
            session.commit()
        print(f"re-decided {result.photos:,} photos {attempt} in "
              f"{time.perf_counter() - started:.2f} s: {result.changed:,} changed, "
              f"now tagged/suggested {result.matching['synthetic-place']}")
    if args.learn:
        command = [sys.executable, "-m", "phototagger.cli", "learn", "Benchmark Place",
                   str(args.learn), "--db", url]
        started = time.perf_counter()
        out = subprocess.run(command, capture_output=True, text=True)
        print(f"`phototagger learn` of {args.learn} as a command: "
              f"{time.perf_counter() - started:.1f} s")
        print(out.stdout + out.stderr)


if __name__ == "__main__":
    main()
