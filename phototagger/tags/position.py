"""Whether a photo carries a position of its own: yes, no, or unknown.

An estimate is written only where the answer is a sure "no": EXIF that cannot be read might hold
the camera's GPS, and an estimate beside it would contradict the photo. One reader serves every
format: the raw TIFF block is found (JPEG APP1, PNG eXIf, the TIFF file itself, or what Pillow
extracts from WebP and HEIF) and walked by ``exif.read_gps``, which checks refs and ranges.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from phototagger.imaging import sniff_format
from phototagger.tags import exif, jpeg, png

# PNG text chunks in which older tools (ImageMagick, exiv2) keep EXIF as hex
_PNG_EXIF_TEXT = (b"Raw profile type exif", b"Raw profile type APP1")


def sniff(path: Path) -> str | None:
    """The file's format from its first bytes (imaging.sniff_format), None for unknown."""
    with path.open("rb") as handle:
        return sniff_format(handle.read(16))


def exif_block(path: Path, data: bytes | None = None) -> bytes | None:
    """The photo's EXIF TIFF block, None when it has none; ExifError when it cannot be found.

    ``data``: the file's bytes when the caller has already read them (not read again).
    """
    kind = sniff(path) if data is None else sniff_format(data[:16])
    if kind in ("jpeg", "tiff", "png") and data is None:
        data = path.read_bytes()
    try:
        if kind == "jpeg":
            return jpeg.exif_tiff(jpeg.parse(data))
        if kind == "tiff":
            return data
        if kind == "png":
            found = png.chunks(data)
            if any(k in (b"tEXt", b"zTXt", b"iTXt") and b.startswith(_PNG_EXIF_TEXT)
                   for k, b in found):
                raise exif.ExifError("EXIF kept in a PNG text chunk")
            return next((body for k, body in found if k == b"eXIf"), None)
        return _pillow_block(path if data is None else io.BytesIO(data))
    except (jpeg.JpegStructureError, png.PngStructureError) as error:
        raise exif.ExifError(str(error)) from None


def _pillow_block(path: Path | io.BytesIO) -> bytes | None:
    from PIL import Image

    with contextlib.suppress(ImportError):
        import pillow_heif

        pillow_heif.register_heif_opener()
    try:
        with Image.open(path) as image:
            raw = image.info.get("exif")
    except Exception as error:  # Pillow and its plugins raise many types
        raise exif.ExifError(f"cannot open: {error}") from None
    if not raw:
        return None
    return raw[len(jpeg.EXIF_ID) :] if raw.startswith(jpeg.EXIF_ID) else raw


def camera_gps(path: Path, data: bytes | None = None) -> tuple[float, float] | None:
    """The photo's own GPS position, None when it has none (or only phototagger's estimate).

    Raises ExifError (or OSError) when that cannot be told.
    """
    tiff = exif_block(path, data)
    if tiff is None or exif.is_ours(tiff):
        return None
    return exif.read_gps(tiff)


def has_camera_gps(path: Path) -> bool | None:
    """True / False, or None when the photo's EXIF cannot be read and the answer is unknown."""
    try:
        return camera_gps(path) is not None
    except (OSError, exif.ExifError):
        return None
