"""Upright, downscaled JPEGs of photos for the browser, through phototagger's own decoder.

Going through ``imaging.decode`` means the app applies the same bomb limit, format sniffing and
EXIF orientation as ``scan``, and never hands the browser an original file (or its GPS tags).
Every decode in the app holds one of a few slots (``DecodeSlots``): a big image takes a few
hundred MB while it decodes, and the server must not take as many at once as it is sent.
"""

from __future__ import annotations

import base64
import contextlib
import io
import threading
from collections.abc import Iterator

from PIL import Image

from phototagger.errors import BusyError
from phototagger.imaging import decode, read_file

THUMBNAIL_SIZE = 320
PREVIEW_SIZE = 1280


class DecodeSlots:
    """At most ``count`` decodes at once; a decode that waits ``wait`` seconds for a slot in
    vain raises BusyError (the app answers 503, try again), so every request gets an answer."""

    def __init__(self, count: int = 2, wait: float = 30.0):
        self._free = threading.BoundedSemaphore(count)
        self.wait = wait

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        if not self._free.acquire(timeout=self.wait):
            raise BusyError("the server is busy decoding other images: try again shortly")
        try:
            yield
        finally:
            self._free.release()


def fitted_jpeg(image: Image.Image, size: int) -> bytes:
    """``image`` fitted in ``size`` x ``size``, as a JPEG (with no metadata of the original)."""
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=82)
    return buffer.getvalue()


def upright_jpeg_of_file(path: str, size: int, slots: DecodeSlots) -> bytes:
    """The photo at ``path`` turned upright and fitted in ``size`` x ``size``; raises
    ImageError, or BusyError when no decoding slot frees in time."""
    with slots.held():  # the file's bytes too: a library may hold a TIFF of hundreds of MB
        image, _ = decode(read_file(path), min_side=size)
    return fitted_jpeg(image, size)


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
