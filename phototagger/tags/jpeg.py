"""Lossless JPEG editing at the segment level: metadata segments change, image data never does.

A JPEG is SOI, marker segments, then the entropy-coded scan(s) up to EOI and whatever trails it.
Everything from the first SOS on is kept as one opaque block, byte for byte: a view into the
bytes read, never a copy, since a camera file's scan is megabytes and the writer handles several
at once.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

SOI = b"\xff\xd8"
APP0, APP1, APP2, SOS, EOI = 0xE0, 0xE1, 0xE2, 0xDA, 0xD9
JFIF_ID = b"JFIF\x00"
EXIF_ID = b"Exif\x00\x00"
XMP_ID = b"http://ns.adobe.com/xap/1.0/\x00"
EXTENDED_XMP_ID = b"http://ns.adobe.com/xmp/extension/\x00"
MPF_ID = b"MPF\x00"
MAX_PAYLOAD = 65533  # the length field (65535 at most) counts its own two bytes


class JpegStructureError(ValueError):
    """The file is not a JPEG whose segments we can walk with certainty."""


@dataclass
class Segment:
    marker: int
    payload: bytes

    def to_bytes(self) -> bytes:
        if len(self.payload) > MAX_PAYLOAD:
            raise JpegStructureError(f"segment of {len(self.payload)} bytes exceeds 64 KB")
        return bytes((0xFF, self.marker)) + struct.pack(">H", len(self.payload) + 2) + self.payload

    def is_app(self, marker: int, ident: bytes) -> bool:
        return self.marker == marker and self.payload.startswith(ident)


@dataclass
class Jpeg:
    """Header segments (between SOI and the first SOS) and the untouched rest of the file."""

    segments: list[Segment] = field(default_factory=list)
    scan: bytes | memoryview = b""

    def chunks(self) -> list[bytes | memoryview]:
        """The file as written: the new header, then the scan as it was (no joined copy)."""
        return [SOI + b"".join(s.to_bytes() for s in self.segments), self.scan]

    def to_bytes(self) -> bytes:
        return b"".join(self.chunks())

    def indexes(self, marker: int, ident: bytes) -> list[int]:
        return [i for i, s in enumerate(self.segments) if s.is_app(marker, ident)]

    def exif_index(self) -> int | None:
        found = self.indexes(APP1, EXIF_ID)
        return found[0] if found else None

    def xmp_index(self) -> int | None:
        found = self.indexes(APP1, XMP_ID)
        if len(found) > 1:
            raise JpegStructureError("more than one standard XMP segment")
        return found[0] if found else None

    def mpf_index(self) -> int | None:
        found = self.indexes(APP2, MPF_ID)
        return found[0] if found else None

    def metadata_slot(self) -> int:
        """Where a new metadata segment goes: after APP0/EXIF, before anything else."""
        slot = 0
        for i, seg in enumerate(self.segments):
            if seg.marker == APP0 or seg.is_app(APP1, EXIF_ID):
                slot = i + 1
            else:
                break
        return slot


def parse(data: bytes) -> Jpeg:
    """Split a JPEG into header segments and the scan; refuse anything we don't understand.

    The scan is a view of ``data``, which must not change while the result is in use.
    """
    if not data.startswith(SOI):
        raise JpegStructureError("not a JPEG (no SOI marker)")
    jpeg, pos = Jpeg(), 2
    while True:
        if pos + 4 > len(data) or data[pos] != 0xFF:
            raise JpegStructureError(f"no marker at byte {pos}")
        marker = data[pos + 1]
        if marker == SOS:
            jpeg.scan = memoryview(data)[pos:]
            return jpeg
        if marker == 0xFF or marker == EOI or marker == 0x01 or 0xD0 <= marker <= 0xD8:
            raise JpegStructureError(f"unexpected marker 0x{marker:02X} at byte {pos}")
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        end = pos + 2 + length
        if length < 2 or end > len(data):
            raise JpegStructureError(f"segment at byte {pos} overruns the file")
        jpeg.segments.append(Segment(marker, data[pos + 4 : end]))
        pos = end


def xmp_packet(jpeg: Jpeg) -> bytes | None:
    index = jpeg.xmp_index()
    return None if index is None else jpeg.segments[index].payload[len(XMP_ID) :]


def jfif_density(jpeg: Jpeg) -> tuple[int, int, int] | None:
    """JFIF's pixel density as (x, y, units: 0 an aspect ratio only, 1 per inch, 2 per cm);
    None where there is no JFIF segment or it states nothing usable."""
    for segment in jpeg.segments:
        if segment.is_app(APP0, JFIF_ID) and len(segment.payload) >= 12:
            units, x, y = struct.unpack(">BHH", segment.payload[7:12])
            return (x, y, units) if units in (0, 1, 2) and x and y else None
    return None


def exif_tiff(jpeg: Jpeg) -> bytes | None:
    index = jpeg.exif_index()
    return None if index is None else jpeg.segments[index].payload[len(EXIF_ID) :]
