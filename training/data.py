"""Folder-of-folders data sets: discover the classes, split them, decode once, augment.

A data set is a folder with one sub-folder per landmark: ``eiffel-tower/`` or Udacity-style
``14.Eiffel_Tower/``. Each class is matched to the gazetteer; a class missing from it is still
trained, with its location left empty, and listed in :attr:`DataSet.unmatched`.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2
from tqdm import tqdm

from phototagger.errors import ConfigError, ImageError
from phototagger.imaging import ImageFacts, PreprocessSpec, load_input, open_image, resized
from phototagger.landmarks import Landmark, fold, match, read_gazetteer
from phototagger.scan.walk import IMAGE_EXTENSIONS

_NUMBERED = re.compile(r"^\d+\.(.+)$")


def folder_slug(folder: str) -> tuple[str, str]:
    """``14.Eiffel_Tower`` -> (``eiffel-tower``, ``Eiffel Tower``); plain slugs pass through."""
    numbered = _NUMBERED.match(folder)
    name = (numbered.group(1) if numbered else folder).replace("_", " ").strip()
    slug = re.sub(r"[^a-z0-9]+", "-", name.casefold()).strip("-")
    pretty = name if numbered or " " in name else name.replace("-", " ").title()
    return slug or folder, pretty


def list_images(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
    )


@dataclass
class DataSet:
    """The classes of a folder-of-folders data set and its labelled files, in a stable order."""

    root: Path
    classes: list[Landmark]
    samples: list[tuple[Path, int]]
    unmatched: list[str] = field(default_factory=list)

    @property
    def counts(self) -> list[int]:
        counts = Counter(label for _, label in self.samples)
        return [counts[i] for i in range(len(self.classes))]

    def summary(self) -> dict:
        return {"data": str(self.root), "images": len(self.samples), "classes": len(self.classes),
                "per_class": dict(zip((c.slug for c in self.classes), self.counts, strict=True)),
                "not_in_gazetteer": self.unmatched}


def default_gazetteer(root: Path) -> Path | None:
    for candidate in (root / "landmarks.csv", root.parent / "landmarks.csv"):
        if candidate.is_file():
            return candidate
    return None


def scan_folder(root: str | Path, gazetteer: str | Path | None = None) -> DataSet:
    """Discover classes and images; raise ConfigError with a plain reason when there are none."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"data folder not found: {root}")
    gazetteer = Path(gazetteer) if gazetteer else default_gazetteer(root)
    known = read_gazetteer(gazetteer) if gazetteer else {}
    classes, samples, unmatched = [], [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = list_images(folder)
        if not images:
            continue
        slug, name = folder_slug(folder.name)
        landmark = known.get(slug) or _by_name(known.values(), name)
        if landmark is None:
            unmatched.append(slug)
            landmark = Landmark(slug=slug, name=name)
        samples += [(path, len(classes)) for path in images]
        classes.append(landmark)
    if len(classes) < 2:
        raise ConfigError(
            f"{root} holds {len(classes)} class folder(s) with images: a data set needs at least"
            " two sub-folders (one per landmark) of .jpg/.png/... photos"
        )
    return DataSet(root, classes, samples, unmatched)


def _by_name(landmarks, name: str) -> Landmark | None:
    """The gazetteer row whose name or alias is exactly ``name`` (case and accents aside)."""
    for landmark in match(landmarks, name):
        if fold(name) in (fold(text) for text in (landmark.name, *landmark.aliases)):
            return landmark
    return None


def stratified_split(
    samples: list[tuple[Path, int]], val_fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Indices of train and validation samples: the same fraction of every class, fixed by seed."""
    by_class: dict[int, list[int]] = {}
    for index, (_, label) in enumerate(samples):
        by_class.setdefault(label, []).append(index)
    rng = random.Random(seed)
    train, val = [], []
    for label in sorted(by_class):
        indices = by_class[label][:]
        rng.shuffle(indices)
        n_val = max(1, round(val_fraction * len(indices))) if len(indices) > 1 else 0
        val += indices[:n_val]
        train += indices[n_val:]
    return sorted(train), sorted(val)


def negative_folders(root: str | Path) -> list[str]:
    """The kinds of photo in a negatives folder (its sub-folders), as a model file records them."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"negatives folder not found: {root}")
    return sorted(p.name for p in root.iterdir() if p.is_dir())


def split_negatives(root: str | Path, held_out: float, seed: int,
                    folders: list[str] | None = None) -> tuple[list[Path], list[Path]]:
    """Photos with no landmark, split like the landmarks (per sub-folder: food, scenes, people).

    The first part teaches the model to answer "none of these" (outlier exposure); the held-out
    part is what evaluation counts false tags on, so that number is measured on unseen photos.
    ``folders``: the sub-folders to split (default: all). The split depends on the set of
    folders, so a model file records the ones it was made with: folders added later must not
    reshuffle what it counts as held out.
    """
    root = Path(root)
    names = negative_folders(root) if folders is None else sorted(folders)
    missing = [name for name in names if not (root / name).is_dir()]
    if missing:
        raise ConfigError(f"{root} lacks the negatives folder(s) {', '.join(missing)}")
    groups = [root / name for name in names] or [root]
    samples = [(path, g) for g, folder in enumerate(groups) for path in list_images(folder)]
    if not samples:
        raise ConfigError(f"no photos in the negatives folder {root}")
    train, kept = stratified_split(samples, held_out, seed)
    return [samples[i][0] for i in train], [samples[i][0] for i in kept]


def negative_split(meta: dict, root: Path) -> dict[str, tuple[list[Path], list[Path]]]:
    """Per kind of ordinary photo: (photos fitted on, photos held out), as the file records.

    The network's own outlier exposure split the folders it was trained with; kinds added
    after it are split on their own, so neither reshuffles the other.
    """
    training = meta.get("training", {})
    seed = training.get("split_seed", 0)
    trained = training.get("negatives_folders") or []
    fraction = training.get("negatives_held_out") or 0.5
    if "evidence" in meta:  # the kinds its reference photos were split from, no more
        later = [name for name in meta["evidence"].get("ordinary_folders", [])
                 if name not in trained]
    else:  # a file without reference photos yet: the kinds there are now
        later = [name for name in negative_folders(root) if name not in trained]
    kinds: dict[str, tuple[list[Path], list[Path]]] = {}
    for folders in (trained, later):
        if not folders:
            continue
        fit, held = split_negatives(root, fraction, seed, folders)
        for name in folders:
            kinds[name] = ([p for p in fit if p.parent.name == name],
                           [p for p in held if p.parent.name == name])
    return kinds


def split_digest(samples: list[tuple[Path, int]], indices: list[int], root: Path) -> str:
    """A short fingerprint of a split, stored in the model file to recognise it later."""
    names = "\n".join(str(samples[i][0].relative_to(root)) for i in indices)
    return hashlib.sha256(names.encode()).hexdigest()[:16]


def decode(path: Path, short_side: int) -> torch.Tensor:
    """Decode upright RGB through phototagger's own reader, short side scaled to ``short_side``."""
    image, _ = open_image(path, min_side=short_side)
    return resized(image, short_side)


def input_batches(paths: list[Path], preprocess: PreprocessSpec, batch_size: int = 32,
                  desc: str = "photos") -> Iterator[tuple[torch.Tensor, list[int],
                                                          list[ImageFacts]]]:
    """The photos decoded as ``scan`` decodes them, in batches: each batch with the indices in
    ``paths`` of its photos and their facts. Photos that fail to decode are left out."""
    tensors, kept, facts = [], [], []
    for index, path in enumerate(tqdm(paths, desc=desc, leave=False)):
        try:
            tensor, fact = load_input(path, preprocess)
        except ImageError:
            continue
        tensors.append(tensor)
        kept.append(index)
        facts.append(fact)
        if len(tensors) == batch_size:
            yield torch.stack(tensors), kept, facts
            tensors, kept, facts = [], [], []
    if tensors:
        yield torch.stack(tensors), kept, facts


def train_transform(size: int, mean, std) -> v2.Compose:
    """Tourist photos: framed anywhere, any light, some tilt, sometimes black and white.

    Flips are kept (few landmarks are recognised by their handedness); crops down to a quarter
    of the photo teach the net parts of a building; colour jitter covers dusk, night and haze.
    """
    return v2.Compose([
        v2.RandomResizedCrop(size, scale=(0.25, 1.0), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.RandomApply([v2.RandomRotation(10)], p=0.3),
        v2.ColorJitter(0.4, 0.4, 0.4, 0.05),
        v2.RandomGrayscale(0.05),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean, std),
    ])


class DecodedImages(Dataset):
    """Images decoded once into memory (the photos are small), augmented on every access."""

    def __init__(self, samples: list[tuple[Path, int]], short_side: int, transform=None,
                 progress=None):
        self.images: list[torch.Tensor] = []
        self.labels: list[int] = []
        self.skipped: list[tuple[Path, str]] = []
        for path, label in progress(samples) if progress else samples:
            try:
                self.images.append(decode(path, short_side))
            except ImageError as error:
                self.skipped.append((path, str(error)))
                continue
            self.labels.append(label)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index]
        return (self.transform(image) if self.transform else image), self.labels[index]
