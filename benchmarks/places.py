"""Do ``phototagger places``' clusters group photos of one landmark and leave ordinary photos
out? Prints purity and coverage; never passes or fails. Run from the repository root:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/places.py [--data /work/shared/data]

Embeds (with the shipped model, as a scan does) a seeded sample of landmark photos, a few
landmarks with many photos each, mixed with ordinary photos of several kinds, then clusters
them as ``places`` does (phototagger.places.cluster) and with other HDBSCAN settings.
*Purity*: of the photos put in a cluster, the share whose cluster is mostly their own
landmark. *Coverage*: of the landmark photos, the share put in a cluster of their landmark.
*Ordinary clustered*: of the ordinary photos, the share put in any cluster.
"""

from __future__ import annotations

import argparse
import random
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import HDBSCAN

from phototagger import config
from phototagger.imaging import load_input
from phototagger.model import LandmarkModel
from phototagger.places import cluster

LANDMARKS, PER_LANDMARK = 12, 25
ORDINARY_FOLDERS, PER_FOLDER = ("food", "people", "landscapes", "vehicles", "intel"), 60


def sample(data: Path) -> tuple[list[str], list[str]]:
    """Photo paths and their labels ("" for an ordinary photo), seeded."""
    rng = random.Random(0)
    folders = sorted((data / "landmarks" / "train").iterdir())
    paths, labels = [], []
    for folder in rng.sample(folders, LANDMARKS):
        for path in rng.sample(sorted(folder.glob("*.jpg")), PER_LANDMARK):
            paths.append(str(path))
            labels.append(folder.name)
    for name in ORDINARY_FOLDERS:
        for path in rng.sample(sorted((data / "negatives" / name).glob("*.jpg")), PER_FOLDER):
            paths.append(str(path))
            labels.append("")
    return paths, labels


def embed(paths: list[str]) -> dict[str, np.ndarray]:
    """Each photo's embedding and its similarity to the ordinary reference photos, as a scan
    stores them."""
    model = LandmarkModel.load(config.DEFAULT_MODEL, "cpu")
    vectors, ordinary = [], []
    for start in range(0, len(paths), 32):
        batch = torch.stack([load_input(p, model.preprocess)[0]
                             for p in paths[start:start + 32]])
        scores = model.scores(batch)
        vectors.append(scores.embeddings.numpy())
        ordinary.append(scores.ordinary.numpy())
    return {"vectors": np.vstack(vectors), "ordinary": np.concatenate(ordinary)}


def embedded_sample(description: str) -> tuple[Path, list[str], np.ndarray, np.ndarray]:
    """The command line both benchmarks take, and the sample's labels, embeddings and ordinary
    similarities (embedded once, then read from the cache)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data"))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/places-embeddings.npz"))
    args = parser.parse_args()
    paths, labels = sample(args.data)
    if not args.cache.is_file():
        np.savez(args.cache, **embed(paths))
    cached = np.load(args.cache)
    return args.data, labels, cached["vectors"], cached["ordinary"]


def score(labels: list[str], clusters: np.ndarray) -> str:
    clustered = pure = covered = 0
    for label in set(clusters.tolist()) - {-1}:
        members = [labels[i] for i in np.flatnonzero(clusters == label)]
        top, count = Counter(members).most_common(1)[0]
        clustered += len(members)
        if top:
            pure += count
            covered += count
    landmark_photos = sum(1 for label in labels if label)
    ordinary = [c for c, label in zip(clusters, labels, strict=True) if not label]
    return (f"{len(set(clusters.tolist()) - {-1}):3d} clusters, purity "
            f"{pure / max(1, clustered):6.1%}, coverage {covered / landmark_photos:6.1%}, "
            f"ordinary clustered {sum(c >= 0 for c in ordinary) / max(1, len(ordinary)):6.1%}")


def main() -> None:
    _, labels, vectors, ordinary = embedded_sample(__doc__.splitlines()[0])
    print(f"{LANDMARKS} landmarks x {PER_LANDMARK} photos, {len(ORDINARY_FOLDERS)} kinds of "
          f"ordinary photo x {PER_FOLDER}")
    print(f"places.cluster (as `places` does):        {score(labels, cluster(vectors))}")
    landmark = np.array([bool(label) for label in labels])
    for name, mask in (("landmark", landmark), ("ordinary", ~landmark)):
        print(f"similarity to the ordinary reference photos, {name} photos: 5/50/95th "
              f"percentiles {np.percentile(ordinary[mask], [5, 50, 95]).round(3).tolist()}")
    for cut in (0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85):
        kept = ordinary < cut
        rest = [label for label, keep in zip(labels, kept, strict=True) if keep]
        print(f"photos whose ordinary similarity is {cut} or more left out "
              f"({(~kept[landmark]).mean():.1%} of the landmark photos, "
              f"{(~kept[~landmark]).mean():.1%} of the ordinary ones): "
              f"{score(rest, cluster(vectors[kept]))}")
    for min_size in (5, 8):
        for min_samples in (None, 2, 10):
            for method in ("eom", "leaf"):
                found = HDBSCAN(min_cluster_size=min_size, min_samples=min_samples, copy=True,
                                cluster_selection_method=method).fit_predict(vectors)
                print(f"min_cluster_size {min_size} min_samples {min_samples!s:4} {method:4}: "
                      f"{score(labels, found)}")


if __name__ == "__main__":
    main()
