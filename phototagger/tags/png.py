"""Lossless PNG editing: XMP lives in an uncompressed iTXt chunk 'XML:com.adobe.xmp'.

Every other chunk, the image data included, is copied byte for byte.
"""

from __future__ import annotations

import hashlib
import struct
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"
XMP_KEYWORD = b"XML:com.adobe.xmp"


class PngStructureError(ValueError):
    """A PNG whose chunks do not walk cleanly (bad length, bad CRC, no IEND)."""


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, body) of every chunk, CRCs checked."""
    if not data.startswith(SIGNATURE):
        raise PngStructureError("not a PNG")
    found, pos = [], len(SIGNATURE)
    while pos < len(data):
        if pos + 12 > len(data):
            raise PngStructureError("truncated chunk")
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if len(body) != length or data[pos + 8 + length : pos + 12 + length] != _crc(kind, body):
            raise PngStructureError(f"chunk {kind!r} is truncated or has a bad CRC")
        found.append((kind, body))
        pos += 12 + length
        if kind == b"IEND":
            break
    if not found or found[-1][0] != b"IEND" or pos != len(data):
        raise PngStructureError("no IEND at the end of the file")
    return found


def _crc(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _is_xmp(kind: bytes, body: bytes) -> bool:
    return kind == b"iTXt" and body.startswith(XMP_KEYWORD + b"\x00")


def xmp_packet(data: bytes) -> bytes | None:
    """The XMP packet; PngStructureError for a compressed one we would not rewrite."""
    found = [body for kind, body in chunks(data) if _is_xmp(kind, body)]
    if len(found) > 1:
        raise PngStructureError("more than one XMP chunk")
    if not found:
        return None
    rest = found[0][len(XMP_KEYWORD) + 1 :]
    if rest[:1] != b"\x00":
        raise PngStructureError("compressed XMP chunk")
    _, _, rest = rest[2:].partition(b"\x00")  # language tag
    _, _, text = rest.partition(b"\x00")  # translated keyword
    return text


def with_xmp(data: bytes, packet: bytes | None) -> bytes:
    """The PNG with its XMP chunk replaced, inserted before the first IDAT, or (None) removed."""
    old = chunks(data)
    body = XMP_KEYWORD + b"\x00\x00\x00\x00\x00" + packet if packet is not None else None
    out, placed = [], False
    for kind, chunk in old:
        if _is_xmp(kind, chunk):
            if body is not None and not placed:
                out.append((b"iTXt", body))
                placed = True
            continue
        if kind == b"IDAT" and body is not None and not placed:
            out.append((b"iTXt", body))
            placed = True
        out.append((kind, chunk))
    return SIGNATURE + b"".join(struct.pack(">I", len(b)) + k + b + _crc(k, b) for k, b in out)


def image_digest(data: bytes) -> str:
    """Hash of every chunk but the XMP one: equal before and after a metadata edit."""
    digest = hashlib.sha256()
    for kind, body in chunks(data):
        if not _is_xmp(kind, body):
            digest.update(kind + struct.pack(">I", len(body)) + body)
    return digest.hexdigest()
