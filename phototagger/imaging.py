"""Open a photo safely and turn it into the model's input.

One copy of the preprocessing, used by ``scan``, ``predict``, the app and training's evaluation,
so a model is always fed exactly what it was measured on.
"""

from __future__ import annotations

import dataclasses
import io
import os
import struct
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, UnidentifiedImageError

from phototagger.errors import ConfigError, ImageError

if TYPE_CHECKING:
    import torch

try:  # HEIC/HEIF support is optional at import time, required by setup.cfg.
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover - pillow-heif is a declared dependency
    pillow_heif = None

#: Refuse images above this many pixels (a 200 MP panorama is fine; a decompression bomb is not).
MAX_PIXELS = 250_000_000
#: Refuse files above this size before reading them into memory.
MAX_FILE_BYTES = 1 << 30
# Pillow warns above its limit and refuses above twice it; warnings are errors here (below).
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
_TOO_LARGE = (
    f"image too large: over {MAX_PIXELS // 1_000_000} MP, refused as a possible decompression bomb"
)

_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
_EXIF_DATETIME_ORIGINAL = 0x9003
_EXIF_DATETIME = 0x0132
_EXIF_IFD = 0x8769


def sniff_format(head: bytes) -> str | None:
    """The image format told by a file's first bytes, or None: extensions are not trusted."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "heif"
    return None


@dataclass(frozen=True)
class PreprocessSpec:
    """How a model wants its input: resize the short side, centre-crop, normalise."""

    input_size: int
    resize: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def from_dict(cls, data: dict) -> PreprocessSpec:
        try:
            spec = cls(
                input_size=int(data["input_size"]),
                resize=int(data.get("resize", data["input_size"])),
                mean=tuple(float(v) for v in data["mean"]),
                std=tuple(float(v) for v in data["std"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ConfigError(f"bad preprocess entry in model file: {error}") from None
        if len(spec.mean) != 3 or len(spec.std) != 3 or spec.resize < spec.input_size:
            raise ConfigError("bad preprocess entry in model file")
        return spec

    def to_dict(self) -> dict:
        return {
            "input_size": self.input_size,
            "resize": self.resize,
            "mean": list(self.mean),
            "std": list(self.std),
        }


@dataclass(frozen=True)
class ImageFacts:
    """What the index keeps about a decoded photo."""

    format: str
    width: int
    height: int
    taken_at: datetime | None
    #: The share of the model's view with visible detail (``detail``), once preprocessed.
    detail: float | None = None


def read_file(path: str | Path) -> bytes:
    """The whole file, with a one-line reason when it cannot be read or is absurdly large."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_FILE_BYTES:
                raise ImageError(f"file too large: {size} bytes")
            return handle.read()
    except FileNotFoundError:
        raise ImageError("no such file") from None
    except IsADirectoryError:
        raise ImageError("not a file") from None
    except OSError as error:
        raise ImageError(f"cannot read: {error.strerror or error}") from None


def image_format(data: bytes) -> str:
    """The format of a file that starts with ``data``, or the ImageError a scan records for it."""
    if not data:
        raise ImageError("empty file")
    kind = sniff_format(data[:16])
    if kind is None:
        raise ImageError("not an image (unrecognised content)")
    return kind


def file_format(path: str | Path) -> str:
    """The format of the file at ``path`` from its first bytes alone, as :func:`image_format`.

    For a person's ``tag``: what a scan would refuse as no image must not be tagged either.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError as error:
        raise ImageError(f"cannot read: {error.strerror or error}") from None
    return image_format(head)


def open_image(path: str | Path, min_side: int | None = None) -> tuple[Image.Image, ImageFacts]:
    """Decode the file at ``path``; see :func:`decode`."""
    return decode(read_file(path), min_side)


def decode(
    data: bytes, min_side: int | None = None, *, max_pixels: int = MAX_PIXELS
) -> tuple[Image.Image, ImageFacts]:
    """Decode ``data`` upright and in RGB, refusing what is not an image or too big to be safe.

    With ``min_side``, the image is made small while it is decoded: a JPEG in the DCT domain
    (Pillow's ``draft``) to the smallest size whose both sides are still at least
    ``min_side`` (six times faster on 12 MP), any other format by a whole factor as soon as
    it is loaded, keeping at least twice ``min_side`` (what :func:`resized` would reduce it
    by anyway), so the copies that follow (orientation, RGB) stay small. ``max_pixels``
    refuses larger images from their header, before anything is decoded.
    """
    [image], facts = decode_sizes(data, (min_side,), max_pixels=max_pixels)
    return image, facts


def decode_sizes(
    data: bytes, sides: Sequence[int | None], *, max_pixels: int = MAX_PIXELS
) -> tuple[list[Image.Image], ImageFacts]:
    """``data`` decoded for each ``min_side`` in ``sides``, each as :func:`decode` gives it.

    The file is decoded once: a format without a DCT-domain draft is reduced for every side
    from the one decoded image. A JPEG is decoded once per side, each at its own DCT scale (a
    fraction of the pixels, and exactly what ``decode`` gives, so the app's prediction is the
    scan's).
    """
    kind = image_format(data)
    with warnings.catch_warnings():
        # Pillow warns of broken EXIF ("Corrupt EXIF data"): handled here, and a cron run with
        # --quiet must stay silent. A decompression bomb's warning becomes an error.
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        if kind != "jpeg" or len(sides) == 1:
            return _decode(data, kind, sides, max_pixels)
        decoded = [_decode(data, kind, (side,), max_pixels) for side in sides]
    return [images[0] for images, _ in decoded], decoded[0][1]


def _decode(
    data: bytes, kind: str, sides: Sequence[int | None], max_pixels: int
) -> tuple[list[Image.Image], ImageFacts]:
    width = height = 0
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height > max_pixels:
            raise ImageError(
                f"image too large: {width}x{height} is {width * height / 1e6:.0f} MP, "
                f"over the limit of {max_pixels / 1e6:.0f} MP"
            )
        exif = image.getexif()
        if kind == "jpeg" and sides[0]:  # one side for a JPEG (decode_sizes)
            image.draft("RGB", (sides[0], sides[0]))
        image.load()
        images = [_reduced(image, side) for side in sides]
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(_TOO_LARGE) from None
    except UnidentifiedImageError:
        raise ImageError(f"corrupt or unsupported {kind} file") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as error:
        message = str(error) or type(error).__name__
        if "truncated" in message.lower():
            raise ImageError(f"truncated {kind} file") from None
        raise ImageError(f"corrupt {kind} file: {message}") from None
    except MemoryError:
        raise ImageError(f"image too large to decode: {width}x{height} pixels") from None
    except ImageError:
        raise
    except Exception as error:  # a decoder plugin may raise anything on hostile input
        raise _undecodable(error) from None
    del image  # the whole decoded image, when it was reduced: freed before the copies below
    if exif.get(0x0112) in (5, 6, 7, 8):
        width, height = height, width
    return [_upright_rgb(image, exif) for image in images], ImageFacts(
        kind, width, height, _taken_at(exif)
    )


#: Modes Pillow's ``reduce`` averages correctly (a palette's indices must not be averaged).
_REDUCIBLE = frozenset({"L", "LA", "RGB", "RGBA", "CMYK"})


def _reduced(image: Image.Image, min_side: int | None) -> Image.Image:
    """``image`` reduced by the whole factor that keeps its short side at least twice
    ``min_side`` (itself when there is none)."""
    factor = min(image.size) // (2 * min_side) if min_side else 0
    if factor <= 1:
        return image
    if image.mode not in _REDUCIBLE:
        image = _to_rgb(image)
    return image.reduce(factor)


#: EXIF orientation -> the turn that makes the pixels upright (as ImageOps.exif_transpose).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90,
}


def _upright_rgb(image: Image.Image, exif: Image.Exif) -> Image.Image:
    """``image`` turned as the file's EXIF says, in RGB; the orientation comes from ``exif``,
    the file's, since a reduced copy carries none. Broken orientation data: left as stored."""
    orientation = exif.get(0x0112)
    turn = _UPRIGHT.get(orientation) if isinstance(orientation, int) else None
    if turn is not None:
        image = image.transpose(turn)
    return image if image.mode == "RGB" else _to_rgb(image)


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.point(lambda value: value * (1 / 256)).convert("L")
    return image.convert("RGB")


def _taken_at(exif: Image.Exif) -> datetime | None:
    try:
        raw = exif.get_ifd(_EXIF_IFD).get(_EXIF_DATETIME_ORIGINAL) or exif.get(_EXIF_DATETIME)
    except Exception:
        return None
    if not isinstance(raw, str):
        return None
    try:
        return datetime.strptime(raw.strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None


#: Names how photos become inputs; part of the key of anything cached from them (training's
#: feature cache), so a change here is never mixed with inputs made the old way.
PREPROCESSING = "reduce by whole factors to 2x, torch antialiased bilinear, centre crop floored"


def resized(image: Image.Image, short_side: int) -> torch.Tensor:
    """The RGB image as a uint8 3 x H x W tensor whose short side is ``short_side``.

    Antialiased bilinear in torch: within one level in 255 of Pillow's BILINEAR and a third
    of its CPU time on a JPEG decoded at 1/8 scale (500x375 to 341x256: 0.9 against 3.4 ms,
    crop and normalisation included). Formats without a DCT-domain draft (PNG, HEIC...)
    arrive at full size: a box reduction by a whole factor first, as Pillow's reducing_gap
    does, keeps the tensor copy and the resampling small.
    """
    import torch  # here, not at the top: a rescan with nothing to decode never loads torch
    from torch.nn import functional as F

    factor = min(image.size) // (2 * short_side)
    if factor > 1:
        image = image.reduce(factor)
    width, height = image.size
    scale = short_side / min(width, height)
    size = (max(short_side, round(height * scale)), max(short_side, round(width * scale)))
    pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1).unsqueeze(0)
    return F.interpolate(pixels, size=size, mode="bilinear", antialias=True, align_corners=False)[0]


def centre_crop(pixels: torch.Tensor, size: int) -> torch.Tensor:
    """The centre ``size`` square of 3 x H x W pixels."""
    top = (pixels.shape[1] - size) // 2
    left = (pixels.shape[2] - size) // 2
    return pixels[:, top : top + size, left : left + size]


def normalised(crop: torch.Tensor, spec: PreprocessSpec) -> torch.Tensor:
    """uint8 3 x S x S pixels as the model's float input."""
    import torch

    mean = torch.tensor(spec.mean).view(3, 1, 1) * 255
    std = torch.tensor(spec.std).view(3, 1, 1) * 255
    return (crop.float() - mean) / std


#: A step of more than this many levels (of 255) between neighbouring pixels is visible detail.
DETAIL_STEP = 4
#: Below this share of such pixels an image is featureless (a lens cap, a wall of sky, a solid
#: screenshot), and the model's answer is no evidence: it named a solid colour Qutb Minar at
#: 63-85 %. Measured on the model's 224 px view: solid colours, a blurred sky and a dark pocket
#: shot have 0 %; all 6,589 landmark photos have 1.7 % or more (birds against clouds; the
#: Statue of Liberty small in a clear sky, 3 %), the 895 ordinary photos 7.9 % or more.
MIN_DETAIL = 0.005


def detail(crop: torch.Tensor) -> float:
    """The share of pixels (uint8 3 x H x W) whose luminance steps by more than DETAIL_STEP
    to the next pixel right or below."""
    luma = crop[0] * 0.299 + crop[1] * 0.587 + crop[2] * 0.114
    corner = luma[:-1, :-1]
    right = (luma[:-1, 1:] - corner).abs()
    below = (luma[1:, :-1] - corner).abs()
    return float(((right > DETAIL_STEP) | (below > DETAIL_STEP)).float().mean())


def is_featureless(detail: float | None) -> bool:
    """Whether a measured ``detail`` is too little for a landmark to be recognised."""
    return detail is not None and detail < MIN_DETAIL


def normalised_crop(pixels: torch.Tensor, spec: PreprocessSpec) -> torch.Tensor:
    """The centre ``spec.input_size`` square of uint8 3 x H x W pixels, normalised (float)."""
    return normalised(centre_crop(pixels, spec.input_size), spec)


def to_input(image: Image.Image, spec: PreprocessSpec) -> torch.Tensor:
    """Resize the short side to ``spec.resize``, centre-crop, normalise: a 3 x S x S tensor."""
    return normalised_crop(resized(image, spec.resize), spec)


def prepare(data: bytes, spec: PreprocessSpec) -> tuple[torch.Tensor, ImageFacts]:
    """Decode and preprocess one file's bytes; any failure becomes an ImageError with a reason.

    A decoder plugin may raise anything on hostile input: one bad file must cost one line in
    the summary, never the scan.
    """
    try:
        image, facts = decode(data, min_side=spec.resize)
        return prepared(image, facts, spec)
    except ImageError:
        raise
    except Exception as error:
        raise _undecodable(error) from None


def _undecodable(error: Exception) -> ImageError:
    return ImageError(f"cannot decode: {type(error).__name__}: {error}")


def prepared(
    image: Image.Image, facts: ImageFacts, spec: PreprocessSpec
) -> tuple[torch.Tensor, ImageFacts]:
    """The model's input from ``image`` as ``decode(data, min_side=spec.resize)`` gave it,
    and its facts with the detail the model's view has."""
    crop = centre_crop(resized(image, spec.resize), spec.input_size)
    return normalised(crop, spec), dataclasses.replace(facts, detail=detail(crop))


def load_input(path: str | Path, spec: PreprocessSpec) -> tuple[torch.Tensor, ImageFacts]:
    """Read, decode and preprocess one file, ready for the model."""
    return prepare(read_file(path), spec)
