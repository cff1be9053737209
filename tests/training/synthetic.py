"""A tiny synthetic landmark data set: three classes told apart by colour, made in a test."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from images import FIXTURES

COLOURS = {"colosseum": (200, 40, 40), "eiffel-tower": (40, 200, 40), "hagia-sophia": (40, 40, 200)}


def write_photo(path: Path, colour: tuple[int, int, int], seed: int, size=(56, 48)) -> Path:
    rng = np.random.default_rng(seed)
    noise = rng.integers(-40, 40, (size[1], size[0], 3))
    pixels = np.clip(np.array(colour)[None, None, :] + noise, 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=90)
    return path


def make_dataset(root: Path, per_class: int = 8, folders: dict | None = None) -> Path:
    """``root/train/<class>/*.jpg`` and the fixture gazetteer as ``root/landmarks.csv``."""
    folders = folders or {slug: slug for slug in COLOURS}
    for n, (slug, folder) in enumerate(folders.items()):
        for i in range(per_class):
            write_photo(root / "train" / folder / f"{i:02d}.jpg", COLOURS[slug], 100 * n + i)
    shutil.copy(FIXTURES / "gazetteer.csv", root / "landmarks.csv")
    return root / "train"
