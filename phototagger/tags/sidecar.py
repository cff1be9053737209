"""XMP sidecars: NAME.ext.xmp next to the photo (digiKam, darktable); NAME.xmp is read too."""

from __future__ import annotations

from pathlib import Path

from phototagger.tags.xmp import Packet


def sidecar_path(photo: Path) -> Path:
    """The sidecar phototagger writes: IMG_1234.jpg -> IMG_1234.jpg.xmp."""
    return photo.with_name(photo.name + ".xmp")


def sidecars(photo: Path) -> list[Path]:
    """Existing sidecars of a photo, phototagger's naming first, then Lightroom's (NAME.xmp)."""
    found = [sidecar_path(photo), photo.with_suffix(".xmp")]
    return [p for i, p in enumerate(found) if p.is_file() and p not in found[:i] and p != photo]


def load(path: Path) -> Packet:
    """Parse a sidecar; raises XmpError on one that is not XMP."""
    return Packet.parse(path.read_bytes())


def render(packet: Packet) -> bytes:
    """A sidecar's bytes: the bare x:xmpmeta document with an XML declaration."""
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + packet.to_bytes(wrap=False) + b"\n"
