"""Damaged and edited files for the regression tests, built from real ones byte by byte."""

from __future__ import annotations

import struct
from pathlib import Path

import piexif
from PIL import Image

from phototagger.tags import exif
from phototagger.tags import jpeg as jpeg_mod


def plain_jpeg(path: Path) -> Path:
    """A JPEG with no EXIF and no XMP (Pillow writes only JFIF)."""
    Image.new("RGB", (32, 24), (200, 30, 60)).save(path, "JPEG")
    return path


def insert_segment(path: Path, marker: int, payload: bytes, index: int = 0) -> None:
    """Put a raw segment at header position ``index`` (0: right after SOI)."""
    parsed = jpeg_mod.parse(path.read_bytes())
    parsed.segments.insert(index, jpeg_mod.Segment(marker, payload))
    path.write_bytes(parsed.to_bytes())


def retype_ifd0_entry(path: Path, tag: int, new_type: int) -> None:
    """Give one IFD0 entry of a JPEG's EXIF a different type, in place (same length)."""
    data = bytearray(path.read_bytes())
    tiff = jpeg_mod.exif_tiff(jpeg_mod.parse(bytes(data)))
    start = bytes(data).index(jpeg_mod.EXIF_ID + tiff) + len(jpeg_mod.EXIF_ID)
    ifd0 = exif.parse_ifd0(tiff)
    index = [e.tag for e in ifd0.entries].index(tag)
    at = start + ifd0.offset + 2 + 12 * index + 2
    data[at : at + 2] = struct.pack(ifd0.endian + "H", new_type)
    path.write_bytes(bytes(data))


def gps_block(lat: tuple[int, int, int], lon: tuple[int, int, int], refs: str = "NE") -> bytes:
    """A TIFF block holding only a GPS IFD (piexif writes refs as ASCII)."""
    gps = {
        1: refs[0],
        2: tuple((v, 1) for v in lat),
        3: refs[1],
        4: tuple((v, 1) for v in lon),
    }
    return piexif.dump({"0th": {}, "Exif": {}, "GPS": gps, "1st": {}})[len(jpeg_mod.EXIF_ID) :]


def retype_gps_refs(tiff: bytes, new_type: int) -> bytes:
    """The block with GPSLatitudeRef/GPSLongitudeRef stored under another type (e.g. UNDEFINED)."""
    out = bytearray(tiff)
    ifd0 = exif.parse_ifd0(tiff)
    e = ifd0.endian
    gps_at = struct.unpack(e + "I", ifd0.find(exif.GPS_POINTER).raw)[0]
    (count,) = struct.unpack_from(e + "H", tiff, gps_at)
    for i in range(count):
        at = gps_at + 2 + 12 * i
        if struct.unpack_from(e + "H", tiff, at)[0] in (1, 3):
            struct.pack_into(e + "H", out, at + 2, new_type)
    return bytes(out)
