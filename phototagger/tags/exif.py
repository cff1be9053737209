"""EXIF GPS in and out; adding and exact undo never move an existing byte of the TIFF block.

Maker notes hold offsets into the block, so the block is never re-serialised: a new GPS IFD and a
copy of IFD0 with one extra entry (the GPSInfo pointer) are appended at its end and the header is
re-pointed at the copy. Undo re-points the header at the original IFD0 and cuts the tail off,
which gives back the original bytes exactly. When another tool has rewritten the block since,
``remove_gps`` takes phototagger's GPS entries out in place instead (zeroing what they held).
"""

from __future__ import annotations

import struct
import unicodedata
from dataclasses import dataclass
from fractions import Fraction

GPS_POINTER = 0x8825
X_RESOLUTION, Y_RESOLUTION, RESOLUTION_UNIT, YCBCR_POSITIONING = 0x011A, 0x011B, 0x0128, 0x0213
POINTER_TAGS = (0x8769, GPS_POINTER, 0xA005)  # ExifIFD, GPSInfo, InteropIFD
TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
BYTE, ASCII, SHORT, LONG, RATIONAL, UNDEFINED = 1, 2, 3, 4, 5, 7
OUR_GPS_TAGS = frozenset({1, 2, 3, 4, 0x1B})  # refs, latitude, longitude, processing method
METHOD_PREFIX = b"ASCII\x00\x00\x00phototagger:"


class ExifError(ValueError):
    """EXIF we cannot walk with certainty: leave it alone."""


@dataclass(frozen=True)
class Entry:
    tag: int
    type: int
    count: int
    raw: bytes  # the 4-byte value-or-offset field, verbatim


@dataclass(frozen=True)
class Ifd0:
    endian: str  # "<" or ">"
    offset: int
    entries: tuple[Entry, ...]
    next_raw: bytes  # the 4-byte pointer to IFD1, verbatim

    def find(self, tag: int) -> Entry | None:
        return next((e for e in self.entries if e.tag == tag), None)


def parse_ifd0(tiff: bytes) -> Ifd0:
    """Read the TIFF header and IFD0; raise ExifError on anything inconsistent."""
    if tiff[:4] == b"II*\x00":
        endian = "<"
    elif tiff[:4] == b"MM\x00*":
        endian = ">"
    else:
        raise ExifError("no TIFF header")
    (offset,) = _unpack(tiff, endian + "I", 4)
    entries = _read_ifd(tiff, endian, offset)
    for entry in entries:
        if entry.type not in TYPE_SIZES:
            raise ExifError(f"IFD0 tag 0x{entry.tag:04X} has unknown type {entry.type}")
        if entry.tag in POINTER_TAGS and (entry.type not in (LONG, 13) or entry.count != 1):
            raise ExifError(f"IFD0 pointer 0x{entry.tag:04X} has the wrong format")
    end = offset + 2 + 12 * len(entries)
    return Ifd0(endian, offset, tuple(entries), tiff[end : end + 4])


def _unpack(tiff: bytes, fmt: str, at: int) -> tuple:
    """struct.unpack_from that says ExifError, never struct.error, for a field off the end."""
    if at < 0 or at + struct.calcsize(fmt) > len(tiff):
        raise ExifError(f"field at byte {at} lies outside the {len(tiff)}-byte block")
    return struct.unpack_from(fmt, tiff, at)


def _read_ifd(tiff: bytes, endian: str, offset: int) -> list[Entry]:
    if offset < 8:
        raise ExifError(f"IFD offset {offset} points into the header")
    (count,) = _unpack(tiff, endian + "H", offset)
    if count == 0 or offset + 2 + 12 * count + 4 > len(tiff):
        raise ExifError("IFD overruns the block")
    entries = []
    for i in range(count):
        start = offset + 2 + 12 * i
        tag, typ, n = _unpack(tiff, endian + "HHI", start)
        entries.append(Entry(tag, typ, n, tiff[start + 8 : start + 12]))
    return entries


def _pointer(endian: str, entry: Entry) -> int:
    return struct.unpack(endian + "I", entry.raw)[0]


def _span(endian: str, entry: Entry) -> tuple[int, int] | None:
    """(offset, size) of an entry's value stored outside the IFD, or None when it is inline."""
    if entry.type not in TYPE_SIZES:
        raise ExifError(f"tag 0x{entry.tag:04X} has unknown type {entry.type}")
    size = TYPE_SIZES[entry.type] * entry.count
    return None if size <= 4 else (_pointer(endian, entry), size)


def _value(tiff: bytes, endian: str, entry: Entry) -> bytes:
    span = _span(endian, entry)
    if span is None:
        return entry.raw[: TYPE_SIZES[entry.type] * entry.count]
    where, size = span
    if where < 8 or where + size > len(tiff):
        raise ExifError(f"value of tag 0x{entry.tag:04X} lies outside the block")
    return tiff[where : where + size]


def gps_ifd(tiff: bytes) -> tuple[str, dict[int, bytes]] | None:
    """The GPS IFD's values by tag, or None when IFD0 has no GPSInfo pointer."""
    ifd0 = parse_ifd0(tiff)
    pointer = ifd0.find(GPS_POINTER)
    if pointer is None:
        return None
    entries = _read_ifd(tiff, ifd0.endian, _pointer(ifd0.endian, pointer))
    return ifd0.endian, {e.tag: _value(tiff, ifd0.endian, e) for e in entries}


def read_gps(tiff: bytes) -> tuple[float, float] | None:
    """Latitude and longitude in decimal degrees (south and west negative), or None."""
    found = gps_ifd(tiff)
    if found is None:
        return None
    endian, values = found
    if not all(tag in values for tag in (1, 2, 3, 4)):
        return None
    lat = _degrees(endian, values[2]) * (-1 if values[1][:1] in (b"S", b"s") else 1)
    lon = _degrees(endian, values[4]) * (-1 if values[3][:1] in (b"W", b"w") else 1)
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ExifError("GPS position out of range")
    return lat, lon


def _degrees(endian: str, raw: bytes) -> float:
    if len(raw) != 24:
        raise ExifError("GPS coordinate is not three rationals")
    parts = _unpack(raw, endian + "6I", 0)
    if 0 in parts[1::2]:
        raise ExifError("GPS coordinate divides by zero")
    d, m, s = (parts[i] / parts[i + 1] for i in (0, 2, 4))
    return d + m / 60 + s / 3600


def is_ours(tiff: bytes) -> bool:
    """Whether the GPS IFD is one phototagger wrote (its processing method says so)."""
    found = gps_ifd(tiff)
    return found is not None and found[1].get(0x1B, b"").startswith(METHOD_PREFIX)


def processing_method(note: str) -> bytes:
    ascii_note = unicodedata.normalize("NFKD", note).encode("ascii", "ignore")
    return METHOD_PREFIX + b" " + ascii_note


def _rationals(value: float) -> tuple[tuple[int, int], ...]:
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = Fraction(round(((value - degrees) * 60 - minutes) * 60 * 10000), 10000)
    return (degrees, 1), (minutes, 1), (seconds.numerator, seconds.denominator)


def add_gps(tiff: bytes, lat: float, lon: float, note: str) -> bytes:
    """Append a GPS IFD and a re-pointing copy of IFD0; every existing byte stays put.

    A GPS IFD without a position (some cameras write only GPSVersionID) is carried over: its
    entries are copied verbatim into the new GPS IFD, their value offsets still valid.
    """
    ifd0 = parse_ifd0(tiff)
    e = ifd0.endian
    old_pointer = ifd0.find(GPS_POINTER)
    kept: list[Entry] = []
    if old_pointer is not None:
        kept = _read_ifd(tiff, e, _pointer(e, old_pointer))
        if OUR_GPS_TAGS & {x.tag for x in kept}:
            raise ExifError("the photo already has a GPS position")
    base = len(tiff) + (len(tiff) % 2)
    others = [x for x in ifd0.entries if x.tag != GPS_POINTER]
    gps_at = base + 2 + 12 * (len(others) + 1) + 4
    method = processing_method(note)
    ours = {0: (BYTE, 4, bytes((2, 3, 0, 0))) if not any(x.tag == 0 for x in kept) else None}
    gps_count = len(kept) + 5 + (ours[0] is not None)
    data_at = gps_at + 2 + 12 * gps_count + 4

    def at(offset: int) -> bytes:
        return struct.pack(e + "I", offset)

    ours |= {
        1: (ASCII, 2, (b"N" if lat >= 0 else b"S") + b"\x00\x00\x00"),
        2: (RATIONAL, 3, at(data_at)),
        3: (ASCII, 2, (b"E" if lon >= 0 else b"W") + b"\x00\x00\x00"),
        4: (RATIONAL, 3, at(data_at + 24)),
        0x1B: (UNDEFINED, len(method), at(data_at + 48)),
    }
    gps = kept + [Entry(tag, *spec) for tag, spec in ours.items() if spec is not None]
    # the pointer goes where ascending order wants it; the camera's entries keep their order
    slot = next((i for i, x in enumerate(others) if x.tag > GPS_POINTER), len(others))
    new_ifd0 = [*others[:slot], Entry(GPS_POINTER, LONG, 1, at(gps_at)), *others[slot:]]
    gps.sort(key=lambda x: x.tag)
    out = bytearray(tiff) + b"\x00" * (base - len(tiff))
    for entries, next_raw in ((new_ifd0, ifd0.next_raw), (gps, b"\x00" * 4)):
        out += struct.pack(e + "H", len(entries))
        out += b"".join(struct.pack(e + "HHI", x.tag, x.type, x.count) + x.raw for x in entries)
        out += next_raw
    for value in (lat, lon):
        out += b"".join(struct.pack(e + "II", n, d) for n, d in _rationals(value))
    out += method + b"\x00" * (len(method) % 2)
    out[4:8] = at(base)
    return bytes(out)


def restore(tiff: bytes, ifd0_offset: int, length: int) -> bytes:
    """Undo add_gps: back to the original IFD0 and length, checked before it is trusted."""
    current = parse_ifd0(tiff)
    if not is_ours(tiff) or length < 8 or current.offset < length or length > len(tiff):
        raise ExifError("the GPS IFD is not the one phototagger appended")
    out = bytearray(tiff[:length])
    out[4:8] = struct.pack(current.endian + "I", ifd0_offset)
    original = parse_ifd0(bytes(out))

    def others(ifd: Ifd0) -> tuple[Entry, ...]:
        return tuple(x for x in ifd.entries if x.tag != GPS_POINTER)

    if others(original) != others(current) or original.next_raw != current.next_raw:
        raise ExifError("IFD0 changed since phototagger wrote GPS")
    return bytes(out)


def remove_gps(tiff: bytes, version_is_ours: bool) -> bytes | None:
    """Take phototagger's GPS entries out of a block another tool has rewritten since.

    Exact undo (restore) needs the tail phototagger appended; once another tool has rewritten
    the block that tail is gone, so the entries are removed in place instead: later entries and
    the next-IFD pointer shift up over them, the freed bytes and the removed values are zeroed,
    and nothing else moves. An emptied GPS IFD loses its GPSInfo pointer too. None: nothing
    would be left in the block (IFD0 held only that pointer).
    """
    if not is_ours(tiff):
        raise ExifError("the GPS IFD is not phototagger's")
    ifd0 = parse_ifd0(tiff)
    e = ifd0.endian
    gps_at = _pointer(e, ifd0.find(GPS_POINTER))
    gps = _read_ifd(tiff, e, gps_at)
    drop = OUR_GPS_TAGS | ({0} if version_is_ours else set())
    tables = [(at, _table_end(at, ifd)) for at, ifd in ((ifd0.offset, ifd0.entries), (gps_at, gps))]
    out = bytearray(tiff)
    for entry in gps:
        span = _span(e, entry) if entry.tag in drop else None
        if span is None:
            continue
        start, end = span[0], span[0] + span[1]
        if any(start < t_end and t_start < end for t_start, t_end in tables):
            raise ExifError("a GPS value overlaps an IFD")
        out[start:end] = bytes(end - start)
    others = [x for x in ifd0.entries if x.tag != GPS_POINTER]
    if all(x.tag in drop for x in gps):
        _drop_entries(out, e, gps_at, gps, {x.tag for x in gps})
        if not others:
            if ifd0.next_raw != bytes(4):
                raise ExifError("IFD0 would be left empty in front of IFD1")
            return None
        _drop_entries(out, e, ifd0.offset, ifd0.entries, {GPS_POINTER})
    else:
        _drop_entries(out, e, gps_at, gps, drop)
    after = parse_ifd0(bytes(out))
    if [x for x in after.entries if x.tag != GPS_POINTER] != others or is_ours(bytes(out)):
        raise ExifError("removing the GPS entries in place did not check out")
    return bytes(out)


def _table_end(offset: int, entries: list[Entry] | tuple[Entry, ...]) -> int:
    return offset + 2 + 12 * len(entries) + 4


def _drop_entries(
    out: bytearray, endian: str, offset: int, entries: list[Entry] | tuple[Entry, ...], drop: set
) -> None:
    """Rewrite an IFD table in place without the dropped tags; an empty one is zeroed."""
    keep = [x for x in entries if x.tag not in drop]
    end = _table_end(offset, entries)
    table = b""
    if keep:
        table = struct.pack(endian + "H", len(keep))
        table += b"".join(struct.pack(endian + "HHI", x.tag, x.type, x.count) + x.raw for x in keep)
        table += bytes(out[end - 4 : end])
    out[offset:end] = table + bytes(end - offset - len(table))


def fresh_block(
    lat: float, lon: float, note: str, density: tuple[int, int, int] | None = None
) -> bytes:
    """A minimal TIFF block for a JPEG that had no EXIF at all: IFD0 as EXIF requires, and GPS.

    IFD0 holds the four tags EXIF makes mandatory for a JPEG, claiming nothing new: the
    resolution JFIF states (``density``: x, y, units 1 per inch or 2 per cm), else EXIF's
    default of 72 dpi, which readers assume anyway (stretched to JFIF's aspect ratio where that
    is all it gives: units 0), and YCbCrPositioning centred, as JFIF prescribes. The GPS IFD is
    added by ``add_gps``, as for every other photo (piexif.dump ended it without its next-IFD
    offset: "GPSLatitude overlaps IFD" in exiftool -validate).
    """
    x, y, units = density or (1, 1, 0)
    if units == 0:
        x_res, y_res, unit = (72 * x, y), (72, 1), 2
    else:
        x_res, y_res, unit = (x, 1), (y, 1), units + 1  # EXIF: 2 inches, 3 centimetres
    values_at = 8 + 2 + 12 * 4 + 4
    ifd0 = struct.pack("<H", 4)
    ifd0 += struct.pack("<HHII", X_RESOLUTION, RATIONAL, 1, values_at)
    ifd0 += struct.pack("<HHII", Y_RESOLUTION, RATIONAL, 1, values_at + 8)
    ifd0 += struct.pack("<HHIHH", RESOLUTION_UNIT, SHORT, 1, unit, 0)
    ifd0 += struct.pack("<HHIHH", YCBCR_POSITIONING, SHORT, 1, 1, 0)
    base = b"II*\x00" + struct.pack("<I", 8) + ifd0 + struct.pack("<I", 0)
    return add_gps(base + struct.pack("<IIII", *x_res, *y_res), lat, lon, note)
