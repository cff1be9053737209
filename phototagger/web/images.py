"""Upright, downscaled JPEGs of photos for the browser, through phototagger's own decoder.

Going through ``imaging.decode`` means the app applies the same bomb limit, format sniffing and
EXIF orientation as ``scan``, and never hands the browser an original file (or its GPS tags).
"""

from __future__ import annotations

import base64
import io

from phototagger.imaging import decode, read_file

THUMBNAIL_SIZE = 320
PREVIEW_SIZE = 1280


def upright_jpeg(data: bytes, size: int) -> bytes:
    """The image in ``data`` turned upright and fitted in ``size`` x ``size``; raises ImageError."""
    image, _ = decode(data, min_side=size)
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=82)
    return buffer.getvalue()


def upright_jpeg_of_file(path: str, size: int) -> bytes:
    return upright_jpeg(read_file(path), size)


def data_url(jpeg: bytes) -> str:
    """A ``data:`` URL, so an upload can be shown without being stored anywhere."""
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def map_url(latitude: float | None, longitude: float | None) -> str | None:
    """A link out to OpenStreetMap centred on a landmark, when its coordinates are known."""
    if latitude is None or longitude is None:
        return None
    return (
        f"https://www.openstreetmap.org/?mlat={latitude:.5f}&mlon={longitude:.5f}"
        f"#map=16/{latitude:.5f}/{longitude:.5f}"
    )
