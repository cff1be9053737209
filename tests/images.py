"""Real image files made by the tests themselves (Pillow + piexif), small and varied, and the
folder of the real ones the tests keep (tests/fixtures)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import piexif
from PIL import Image, ImageDraw

FIXTURES = Path(__file__).parent / "fixtures"
COLOURS = [(200, 60, 40), (40, 90, 200), (60, 160, 80), (230, 200, 60)]


def picture(size: tuple[int, int] = (320, 240), seed: int = 0) -> Image.Image:
    """A picture with structure (bands and a disc), different for each seed."""
    width, height = size
    image = Image.new("RGB", size, ((seed * 53) % 256, (seed * 97) % 256, (seed * 31) % 256))
    draw = ImageDraw.Draw(image)
    for band in range(0, width, 24):
        shade = (band * 7 + seed * 40) % 256
        draw.rectangle([band, 0, band + 11, height], fill=(shade, 255 - shade, (shade * 3) % 256))
    draw.ellipse([width // 4, height // 4, width // 2, height // 2], fill=(250, 240, 30))
    return image


def write_jpeg(path: Path, seed: int = 0, size=(320, 240), exif: dict | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {"exif": piexif.dump(exif)} if exif else {}
    picture(size, seed).save(path, "JPEG", quality=90, **extra)
    return path


def gps_exif(lat: float, lon: float) -> dict:
    def rational(value: float):
        degrees = int(value)
        minutes = int((value - degrees) * 60)
        seconds = round(((value - degrees) * 60 - minutes) * 60 * 100)
        return ((degrees, 1), (minutes, 1), (seconds, 100))

    return {
        "0th": {piexif.ImageIFD.Make: b"TestCam"},
        "Exif": {piexif.ExifIFD.DateTimeOriginal: b"2021:06:01 12:30:00"},
        "GPS": {
            piexif.GPSIFD.GPSVersionID: (2, 3, 0, 0),
            piexif.GPSIFD.GPSLatitudeRef: b"N" if lat >= 0 else b"S",
            piexif.GPSIFD.GPSLatitude: rational(abs(lat)),
            piexif.GPSIFD.GPSLongitudeRef: b"E" if lon >= 0 else b"W",
            piexif.GPSIFD.GPSLongitude: rational(abs(lon)),
        },
    }


def write_image(path: Path, fmt: str, seed: int = 0, size=(320, 240)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    picture(size, seed).save(path, fmt)
    return path


def write_ojpeg_tiff(path: Path) -> Path:
    """A TIFF of old-style JPEG compression (6) without its tables, as old scanners and
    cameras left some: libtiff prints "OJPEGReadHeaderInfoSecTablesQTable: Missing JPEG
    tables." on stderr, from C, and fails to decode it."""
    width = height = 16
    strip = bytes(64)
    entries = [  # (tag, type: 3 short / 4 long, value), in tag order
        (256, 3, width), (257, 3, height), (258, 3, 8), (259, 3, 6), (262, 3, 6),
        (273, 4, 8 + 2 + 12 * 10 + 4), (277, 3, 3), (278, 3, height), (279, 4, len(strip)),
        (512, 3, 1),  # JPEGProc: baseline; and no JPEGQTables, nor a JPEG stream
    ]
    out = bytearray(b"II*\x00" + struct.pack("<IH", 8, len(entries)))
    for tag, kind, value in entries:
        out += struct.pack("<HHI", tag, kind, 1)
        out += struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(out + struct.pack("<I", 0) + strip))
    return path


def jpeg_bytes(size: tuple[int, int] = (320, 240), seed: int = 0, orientation: int = 1) -> bytes:
    """A real JPEG with some structure (a gradient and a block), optionally EXIF-rotated."""
    image = Image.new("RGB", size, COLOURS[seed % len(COLOURS)])
    gradient = Image.linear_gradient("L").resize(size)
    image.paste((255, 255, 255), (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2))
    image = Image.blend(image, Image.merge("RGB", [gradient] * 3), 0.3)
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85, exif=exif.tobytes())
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels: a decompression bomb."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def png_bytes(size: tuple[int, int]) -> bytes:
    """A real RGBA PNG with structure, half transparent."""
    image = Image.open(io.BytesIO(jpeg_bytes(size))).convert("RGBA")
    image.putalpha(Image.linear_gradient("L").resize(size))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()
