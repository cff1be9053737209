"""Photos told apart by colour and a tiny model whose reference photos know some of them:
a landmark set made in the test, for learning, similarity search and places."""

from pathlib import Path

import numpy as np
import piexif
import torch
from PIL import Image

from images import FIXTURES
from phototagger.imaging import PreprocessSpec, load_input
from phototagger.landmarks import read_gazetteer
from phototagger.model import LandmarkModel, save_model_file
from tiny_model import TinyNet, gated, tiny_model_meta

#: Kinds of photo told apart by colour, as the tiny network sees them: the model's own
#: landmarks (green, yellow, purple), ordinary photos (grey), and three places it never saw.
COLOURS = {"green": (40, 170, 60), "yellow": (220, 200, 40), "purple": (130, 40, 160),
           "grey": (128, 128, 128), "red": (200, 40, 40), "blue": (40, 60, 200),
           "cyan": (40, 200, 210)}


def photo(path, kind: str, seed: int, exif: dict | None = None):
    """A textured photo of one kind, different for each seed (with ``exif``: piexif's dict)."""
    rng = np.random.default_rng(seed)
    pixels = (np.array(COLOURS[kind], dtype=float) + rng.normal(0, 25, (96, 128, 3))
              + np.linspace(-30, 30, 128)[None, :, None] * rng.uniform(-1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {"exif": piexif.dump(exif)} if exif else {}
    Image.fromarray(pixels.clip(0, 255).astype("uint8")).save(path, quality=92, **extra)
    return path


#: Where the red photos were taken, a few hundred metres apart.
RED = (28.6562, 77.2410)


def unnamed_places(root: Path, *, green: bool = False) -> Path:
    """Places the model never saw: six red photos (four with camera GPS close together, so
    the two without can be placed from them), six blue and five cyan ones (none), five grey
    ones (ordinary photos to the model: in no place); with ``green``, three of one of the
    model's own landmarks too (a place of three)."""
    from images import gps_exif

    for i in range(6):
        exif = gps_exif(RED[0] + 0.001 * i, RED[1] - 0.001 * i) if i < 4 else None
        photo(root / "red" / f"{i}.jpg", "red", 1000 + i, exif)
        photo(root / "blue" / f"{i}.jpg", "blue", 2000 + i)
        if i < 5:
            photo(root / "cyan" / f"{i}.jpg", "cyan", 3000 + i)
            photo(root / "grey" / f"{i}.jpg", "grey", 4000 + i)
        if green and i < 3:
            photo(root / "green" / f"{i}.jpg", "green", 5000 + i)
    return root


def colour_model(folder: Path) -> LandmarkModel:
    """A model whose reference photos make its evidence real: green is its first landmark,
    yellow its second, purple its third, grey its ordinary photos."""
    torch.manual_seed(0)
    classes = [lm.to_dict() for lm in read_gazetteer(FIXTURES / "gazetteer.csv").values()]
    meta = tiny_model_meta(classes)
    spec = PreprocessSpec.from_dict(meta["preprocess"])

    def tensor(kind, seed):
        return load_input(photo(folder / f"{kind}{seed}.jpg", kind, seed), spec)[0]

    references = [(tensor(kind, i), label) for label, kind in enumerate(["green", "yellow",
                                                                         "purple"])
                  for i in range(6)]
    ordinary = [tensor("grey", i) for i in range(6)]
    module, evidence = gated(TinyNet(len(classes)).eval(), len(classes), references, ordinary,
                             tag_margin=0.1, suggest_margin=0.0, tag_probability=0.5)
    save_model_file(module, {"evidence": evidence, **meta}, folder / "model.pt")
    return LandmarkModel.load(folder / "model.pt", "cpu")
