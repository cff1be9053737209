"""Policy: embed when lossless and verified, else a sidecar; atomic replace; exact undo.

The product's first promise is never to damage a photo: every in-place edit is rebuilt from the
original bytes, written to a temp file, re-read and checked (image data identical, metadata
parses, original EXIF bytes in place) before it replaces the original.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path

from phototagger.errors import TagWriteError
from phototagger.imaging import sniff_format
from phototagger.landmarks import Landmark
from phototagger.tags import exif, jpeg, png, position, sidecar, xmp
from phototagger.tags.atomic import (
    ChangedMeanwhile,
    Chunks,
    OwnerError,
    Replaced,
    atomic_write,
    ensure_unchanged,
    fsync_dir,
)
from phototagger.tags.jpeg import JpegStructureError
from phototagger.tags.png import PngStructureError
from phototagger.tags.xmp import Packet, XmpError

# notes in phototagger's record: what it created whole (the XMP packet, the EXIF block, the GPS IFD)
SEGMENT_XMP, SEGMENT_EXIF, SEGMENT_GPS_IFD = "segment:xmp", "segment:exif", "segment:gps-ifd"


@dataclass
class TagRequest:
    landmark: Landmark
    confidence: float | None  # None for a person's tag
    source: str  # "model" or "person"
    model: str | None
    top_k: list[tuple[str, float]]  # [(landmark name, probability), ...] best first
    tagged_at: datetime  # timezone-aware
    #: Write the landmark's position as the photo's estimated GPS position (photo managers
    #: put every such position on their maps); False: the keywords and place names only.
    estimate_position: bool = True

    @classmethod
    def persons(cls, landmark: Landmark, estimate_position: bool = True) -> TagRequest:
        """A person's landmark, set now (`phototagger tag`, or written again by a scan)."""
        return cls(landmark, None, "person", None, [], datetime.now(UTC), estimate_position)


@dataclass
class WriteResult:
    target: Path
    mode: str  # "embed" or "sidecar"
    gps_written: bool
    reason: str | None = None  # why a sidecar and not the file, and/or why no GPS estimate
    photo: Replaced | None = None  # the photo file as rewritten (None: the photo is untouched)


@dataclass
class RemoveResult:
    files_changed: list[Path]
    removed: bool  # something of phototagger's was removed
    left: list[str] = field(default_factory=list)  # what of it could not be, and why


@dataclass
class ReadTags(xmp.Provenance):
    where: Path  # the photo itself or the sidecar the record was read from


class _Refused(Exception):
    """Embedding is not possible losslessly; the message is the sidecar fallback's reason."""


# -- what to write ------------------------------------------------------------------------
def _entry(request: TagRequest, gps: str) -> xmp.Entry:
    lm = request.landmark
    simple = {
        "Iptc4xmpCore:Location": lm.name,
        "photoshop:City": lm.city,
        "photoshop:State": lm.region,
        "photoshop:Country": lm.country,
        "Iptc4xmpCore:CountryCode": lm.country_code,
    }
    location = {
        "LocationName": lm.name,
        "City": lm.city,
        "ProvinceState": lm.region,
        "CountryName": lm.country,
        "CountryCode": lm.country_code,
    }
    if lm.has_location:
        lat = xmp.gps_coordinate(lm.latitude, "N", "S")
        lon = xmp.gps_coordinate(lm.longitude, "E", "W")
        location |= {"GPSLatitude": lat, "GPSLongitude": lon}
        if gps == "xmp":
            simple |= {
                "exif:GPSLatitude": lat,
                "exif:GPSLongitude": lon,
                "exif:GPSProcessingMethod": f"phototagger: {_gps_note(lm)}",
            }
    provenance = {
        "landmark": lm.name,
        "slug": lm.slug,
        "source": request.source,
        "confidence": None if request.confidence is None else f"{request.confidence:.4f}",
        "model": request.model,
        "taggedAt": request.tagged_at.isoformat(),
        "gpsWritten": gps,
    }
    path = lm.place_path
    return xmp.Entry(
        simple={k: v for k, v in simple.items() if v},
        bags={
            "dc:subject": [lm.name],
            "lr:hierarchicalSubject": ["|".join(("Places", *path))],
            "digiKam:TagsList": ["/".join(("Places", *path))],
        },
        location={k: v for k, v in location.items() if v},
        provenance={k: v for k, v in provenance.items() if v is not None},
        top_k=list(request.top_k),
    )


def _gps_note(lm: Landmark) -> str:
    return f"estimated from landmark {lm.name}"


def _no_estimate(request: TagRequest, camera: bool | None, elsewhere: bool) -> str | None:
    """Why no GPS estimate may be written (None: it may). camera None: EXIF unreadable."""
    if not request.estimate_position:
        return "no GPS estimate: not asked for (--no-position)"
    if not request.landmark.has_location:
        return "no GPS estimate: the landmark has no coordinates"
    if camera is None:
        return "no GPS estimate: the photo's EXIF cannot be read, it may hold a position"
    if camera or elsewhere:
        return "no GPS estimate: the photo has a position of its own"
    return None


def _join(*reasons: str | None) -> str | None:
    return "; ".join(r for r in reasons if r) or None


def _one_line(path: str | Path, what: str, error: BaseException) -> TagWriteError:
    """An unexpected failure as the one-line TagWriteError the scanner expects."""
    detail = " ".join(f"{type(error).__name__}: {error}".split())
    return TagWriteError(f"{path}: {what}, original untouched: {detail}")


def _check(request: TagRequest) -> None:
    if request.tagged_at.tzinfo is None:
        raise TagWriteError("tagged_at must be timezone-aware")
    if request.confidence is not None and not 0 <= request.confidence <= 1:
        raise TagWriteError(f"confidence {request.confidence} is not a probability")


# -- GPS knowledge ------------------------------------------------------------------------
def read_camera_gps(path: str | Path, data: bytes | None = None) -> tuple[float, float] | None:
    """The file's own EXIF GPS position (not one phototagger estimated); never raises.

    None means "no usable position", unreadable EXIF included; the writer itself asks
    position.has_camera_gps, which tells "unknown" apart from "none". ``data``: the file's
    bytes, when already read.
    """
    try:
        return position.camera_gps(Path(path), data)
    except Exception:  # broken EXIF of any kind reads as "no usable position"
        return None


def _a_sidecar_says(path: Path, says: Callable[[Packet], bool]) -> bool:
    """Whether one of the photo's sidecars (another tool's, or the user's) says so."""
    for candidate in sidecar.sidecars(path):
        with contextlib.suppress(OSError, XmpError):
            if says(sidecar.load(candidate)):
                return True
    return False


def _embedded_packet(path: Path, data: bytes | None = None) -> Packet | None:
    """The XMP inside a JPEG or PNG, or None (none there, or unreadable). ``data``: the file's
    bytes when already read."""
    with contextlib.suppress(OSError, ValueError):
        kind = position.sniff(path) if data is None else sniff_format(data[:16])
        data = path.read_bytes() if data is None else data
        raw = (
            jpeg.xmp_packet(jpeg.parse(data))
            if kind == "jpeg"
            else png.xmp_packet(data)
            if kind == "png"
            else None
        )
        return Packet.parse(raw) if raw else None
    return None


# -- public API ---------------------------------------------------------------------------
def write_tags(
    path: str | Path, request: TagRequest, mode: str = "embed", preserve_mtime: bool = False
) -> WriteResult:
    """Tag a photo: in the file when that is lossless and verified, else in NAME.ext.xmp.

    Raises TagWriteError only, whatever goes wrong: the scanner reports it and goes on.
    """
    try:
        return _write_tags(Path(path), request, mode, preserve_mtime)
    except TagWriteError:
        raise
    except Exception as error:  # a bug or a file we misjudged: still the one error type
        raise _one_line(path, "tags not written", error) from None


def remove_tags(path: str | Path) -> RemoveResult:
    """Remove exactly what phototagger wrote, from the file and its sidecars.

    What could not be removed is listed in ``left``; a file whose tags cannot be taken out
    losslessly raises TagWriteError with nothing changed.
    """
    try:
        return _remove_tags(Path(path))
    except TagWriteError:
        raise
    except Exception as error:
        raise _one_line(path, "tags not removed", error) from None


def _write_tags(path: Path, request: TagRequest, mode: str, preserve_mtime: bool) -> WriteResult:
    if mode not in ("embed", "sidecar"):
        raise TagWriteError(f"unknown tag mode {mode!r} (embed or sidecar)")
    real = Path(os.path.realpath(path))  # a symlink's target is the photo to edit
    if not real.is_file():
        raise TagWriteError(f"{path}: not a file")
    _check(request)
    reason = None
    if mode == "embed":
        reason = _embed_refusal(real)
        if reason is None:
            embed = _embed_jpeg if position.sniff(real) == "jpeg" else _embed_png
            try:
                result = embed(real, request, preserve_mtime)
            except _Refused as refused:
                reason = str(refused)
            else:
                _strip_sidecars(path)
                return dataclasses.replace(result, target=path)
    return _write_sidecar(path, request, reason)


def _embed_refusal(real: Path) -> str | None:
    """Why the file itself must not be edited (a sidecar is written instead), or None."""
    kind = position.sniff(real)
    info = real.stat()
    if kind not in ("jpeg", "png"):
        return f"{real.suffix or 'this'} files are not edited in place"
    if _on_read_only_file_system(real):
        return "the file system is read-only"
    if not os.access(real, os.W_OK) or not info.st_mode & 0o222:
        return "the file is read-only"  # the mode bits count even for root
    if not os.access(real.parent, os.W_OK | os.X_OK):
        return "the folder is read-only"
    if info.st_nlink > 1:
        return "hard-linked file: replacing it would split the links"
    return None


def _on_read_only_file_system(path: Path) -> bool:
    """Whether ``path`` lies on a file system mounted read-only (a NAS share, a camera card)."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # AttributeError: no statvfs (Windows)
        return False


def _remove_tags(path: Path) -> RemoveResult:
    real = Path(os.path.realpath(path))
    changed: list[Path] = []
    left: list[str] = []
    kind = position.sniff(real) if real.is_file() else None
    if kind in ("jpeg", "png"):
        unembed = _unembed_jpeg if kind == "jpeg" else _unembed_png
        try:
            done, left = unembed(real)
        except _Refused as refused:
            packet = _embedded_packet(real)
            if packet is None or xmp.read(packet) is None:
                done = False  # nothing of phototagger's in a file we cannot edit
            else:
                raise TagWriteError(
                    f"{path}: phototagger's tags cannot be removed losslessly ({refused}); "
                    "nothing was changed"
                ) from None
        except OSError as error:
            raise TagWriteError(f"{path}: cannot remove tags: {error.strerror or error}") from None
        if done:
            changed.append(path)
    changed += _strip_sidecars(path, strict=True)
    return RemoveResult(files_changed=changed, removed=bool(changed), left=left)


def read_tags(path: str | Path, data: bytes | None = None) -> ReadTags | None:
    """phototagger's entry for a photo; the newest one if file and sidecar disagree.
    ``data``: the file's bytes when already read."""
    path = Path(path)
    found = []
    packet = _embedded_packet(path, data) if data is not None or path.is_file() else None
    if packet is not None:
        found.append((xmp.read(packet), path))
    for candidate in sidecar.sidecars(path):
        with contextlib.suppress(OSError, XmpError):
            found.append((xmp.read(sidecar.load(candidate)), candidate))
    found = [(record, where) for record, where in found if record is not None]
    if not found:
        return None
    record, where = max(
        found,
        key=lambda item: item[0].tagged_at.timestamp() if item[0].tagged_at else float("-inf"),
    )
    shared = {item.name: getattr(record, item.name) for item in fields(xmp.Provenance)}
    return ReadTags(**shared, where=where)


# -- sidecars -----------------------------------------------------------------------------
def _write_sidecar(path: Path, request: TagRequest, reason: str | None) -> WriteResult:
    target = sidecar.sidecar_path(path)
    try:
        read_as = target.stat() if target.exists() else None
        packet = sidecar.load(target) if read_as is not None else Packet.empty()
    except XmpError:
        raise TagWriteError(f"{target}: existing sidecar is not valid XMP; left as it is") from None
    except OSError as error:
        raise TagWriteError(f"{target}: cannot read sidecar: {error.strerror}") from None
    record = xmp.read(packet)
    if _says_already(record, request):
        return WriteResult(target=target, mode="sidecar", gps_written=record.gps_written,
                           reason=reason)
    embedded = _embedded_packet(path)
    xmp.strip(packet)
    elsewhere = (
        (embedded is not None and xmp.has_position(embedded))
        or _a_sidecar_says(path, xmp.has_position)
        or xmp.has_position(packet)
    )
    why_none = _no_estimate(request, position.has_camera_gps(path), elsewhere)
    gps = "none" if why_none else "xmp"
    place = (embedded is not None and xmp.has_place(embedded)) or _a_sidecar_says(
        path, xmp.has_place
    )
    xmp.merge(packet, _entry(request, gps), None, [], place)

    def verify(data: bytes) -> None:
        _verify_record(Packet.parse(data), request)

    try:
        atomic_write(
            target,
            sidecar.render(packet),
            verify,
            like=target if target.exists() else None,
            keep_owner=False,  # phototagger's own file: best effort
            read_as=read_as,
            new_file=read_as is None,
        )
    except ChangedMeanwhile:
        raise TagWriteError(f"{target}: {CHANGED_MEANWHILE}") from None
    except (OSError, XmpError) as error:
        detail = getattr(error, "strerror", None) or str(error)
        why = f" ({reason})" if reason else ""
        raise TagWriteError(f"{target}: cannot write sidecar: {detail}{why}") from None
    return WriteResult(
        target=target, mode="sidecar", gps_written=gps != "none", reason=_join(reason, why_none)
    )


def _strip_sidecars(path: Path, strict: bool = False) -> list[Path]:
    """Take phototagger's entries out of the photo's sidecars; delete ones left empty."""
    changed = []
    for candidate in sidecar.sidecars(path):
        try:
            read_as = candidate.stat()
            packet = sidecar.load(candidate)
            if not xmp.strip(packet):
                continue
            if packet.is_empty():
                ensure_unchanged(candidate, read_as)
                candidate.unlink()
                fsync_dir(candidate.parent)
            else:
                render = sidecar.render(packet)
                atomic_write(
                    candidate, render, _no_record, like=candidate, keep_owner=False, read_as=read_as
                )
            changed.append(candidate)
        except (OSError, XmpError) as error:
            if strict:
                raise TagWriteError(f"{candidate}: cannot remove tags: {error}") from None
    return changed


def _no_record(data: bytes) -> None:
    if xmp.read(Packet.parse(data)) is not None:
        raise TagWriteError("verification failed: phototagger's entry is still there")


def _verify_record(packet: Packet, request: TagRequest) -> None:
    record = xmp.read(packet)
    if (
        record is None
        or record.slug != request.landmark.slug
        or (record.tagged_at != request.tagged_at)
    ):
        raise TagWriteError("verification failed: the written XMP lacks phototagger's entry")


# -- JPEG ---------------------------------------------------------------------------------
def _read(path: Path) -> tuple[bytes, os.stat_result]:
    """A file's bytes, and its stat from before they were read (atomic_write's ``read_as``)."""
    with open(path, "rb") as handle:
        info = os.fstat(handle.fileno())
        return handle.read(), info


def _open_jpeg(path: Path) -> tuple[os.stat_result, jpeg.Jpeg, Packet, bool]:
    """The file's stat before reading, segments (the scan a view of the bytes read), XMP
    packet (new if none) and whether the file had XMP."""
    data, read_as = _read(path)
    try:
        parsed = jpeg.parse(data)
        index = parsed.xmp_index()
    except JpegStructureError as error:
        raise _Refused(f"JPEG structure not understood: {error}") from None
    if parsed.indexes(jpeg.APP1, jpeg.EXTENDED_XMP_ID):
        raise _Refused("the file uses ExtendedXMP")
    if index is None:
        return read_as, parsed, Packet.empty(), False
    try:
        return read_as, parsed, Packet.parse(jpeg.xmp_packet(parsed) or b""), True
    except XmpError as error:
        raise _Refused(f"the file's XMP cannot be merged into: {error}") from None


STALE_GPS = "estimated GPS left in place: EXIF rewritten by another tool"
CHANGED_MEANWHILE = "changed by another program while being tagged: left as it is"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _undo_exif_gps(
    tiff: bytes | None, record: xmp.OurTags | None
) -> tuple[bytes | None, str | None]:
    """EXIF without phototagger's GPS (None: no EXIF left) and, if that failed, why.

    The GPS IFD is known as phototagger's by its processing method, with or without a record.
    A block phototagger created goes only while it is byte for byte what was written; an
    appended GPS IFD is cut off exactly while the block is as left; after another tool rewrote
    the block, phototagger's GPS entries are taken out in place and everything else stays.
    """
    try:
        if tiff is None or not exif.is_ours(tiff):
            return tiff, None
    except exif.ExifError:
        return tiff, None  # EXIF we cannot walk is not ours to touch
    added = set(record.added) if record else set()
    if record and SEGMENT_EXIF in added and record.exif_sha256 == _sha256(tiff):
        return None, None
    if record and record.exif_restore is not None:
        with contextlib.suppress(exif.ExifError):
            return exif.restore(tiff, *record.exif_restore), None
    try:
        return exif.remove_gps(tiff, bool({SEGMENT_EXIF, SEGMENT_GPS_IFD} & added)), None
    except exif.ExifError as error:
        return tiff, f"{STALE_GPS} ({error})"


def _rebuild(parsed: jpeg.Jpeg, tiff: bytes | None, packet: bytes | None) -> list[jpeg.Segment]:
    """New header segments with EXIF and XMP replaced, inserted or dropped."""
    segments = list(parsed.segments)
    changed: set[int] = set()
    for ident, payload in ((jpeg.EXIF_ID, tiff), (jpeg.XMP_ID, packet)):
        found = [i for i, s in enumerate(segments) if s.is_app(jpeg.APP1, ident)]
        new = None if payload is None else jpeg.Segment(jpeg.APP1, ident + payload)
        if found and new is None:
            del segments[found[0]]
            changed.add(found[0])
        elif found and new is not None:
            if segments[found[0]] != new:
                segments[found[0]] = new
                changed.add(found[0])
        elif new is not None:
            slot = jpeg.Jpeg(segments).metadata_slot()
            segments.insert(slot, new)
            changed.add(slot)
    mpf = parsed.mpf_index()
    if mpf is not None and changed and max(changed) > mpf:
        raise _Refused("metadata sits after the MPF index, whose offsets would break")
    for segment in segments:
        if len(segment.payload) > jpeg.MAX_PAYLOAD:
            raise _Refused("the metadata would not fit in a 64 KB JPEG segment")
    return segments


def _others(parsed: jpeg.Jpeg) -> list[jpeg.Segment]:
    return [
        s
        for s in parsed.segments
        if not (s.is_app(jpeg.APP1, jpeg.EXIF_ID) or s.is_app(jpeg.APP1, jpeg.XMP_ID))
    ]


def _says_already(record: xmp.OurTags | None, request: TagRequest) -> bool:
    """Whether phototagger's record already says this (landmark, source, model): then the
    file is left alone, not rewritten for a new time stamp (say, after the index was lost)."""
    return record is not None and (record.slug, record.source, record.model) == (
        request.landmark.slug,
        request.source,
        request.model,
    )


def _embed_jpeg(path: Path, request: TagRequest, preserve_mtime: bool) -> WriteResult:
    read_as, parsed, packet, had_xmp = _open_jpeg(path)
    record = xmp.read(packet)
    if _says_already(record, request):
        return WriteResult(target=path, mode="embed", gps_written=record.gps_written)
    user_tiff, stuck = _undo_exif_gps(jpeg.exif_tiff(parsed), record)
    if stuck:  # re-tagging would leave the old landmark's position beside the new landmark
        raise TagWriteError(f"{path}: not re-tagged: {stuck}")
    camera: bool | None = False
    if user_tiff is not None:
        try:
            exif.parse_ifd0(user_tiff)
            camera = exif.read_gps(user_tiff) is not None
        except exif.ExifError:
            camera = None  # EXIF we cannot read: untouched, and no estimate (we can't tell)
    lm = request.landmark
    elsewhere = xmp.has_position(packet) or _a_sidecar_says(path, xmp.has_position)
    why_none = _no_estimate(request, camera, elsewhere)
    gps, new_tiff, restore_at = "none", user_tiff, None
    if why_none is None:
        gps = "xmp"
        with contextlib.suppress(exif.ExifError):
            if user_tiff is None:
                candidate = exif.fresh_block(
                    lm.latitude, lm.longitude, _gps_note(lm), jpeg.jfif_density(parsed)
                )
            else:
                candidate = exif.add_gps(user_tiff, lm.latitude, lm.longitude, _gps_note(lm))
                restore_at = (exif.parse_ifd0(user_tiff).offset, len(user_tiff))
            if len(jpeg.EXIF_ID) + len(candidate) <= jpeg.MAX_PAYLOAD:
                new_tiff, gps = candidate, "exif"
            else:
                restore_at = None
    created_xmp = not had_xmp or (record is not None and SEGMENT_XMP in record.added)
    notes = [SEGMENT_XMP] * created_xmp
    entry = _entry(request, gps)
    if gps == "exif" and user_tiff is None:
        notes.append(SEGMENT_EXIF)
        entry.provenance["exifSha256"] = _sha256(new_tiff)
    elif gps == "exif" and exif.parse_ifd0(user_tiff).find(exif.GPS_POINTER) is None:
        notes.append(SEGMENT_GPS_IFD)
    xmp.strip(packet)
    xmp.merge(packet, entry, restore_at, notes, _a_sidecar_says(path, xmp.has_place))
    segments = _rebuild(parsed, new_tiff, packet.to_bytes())
    new_data = jpeg.Jpeg(segments, parsed.scan).chunks()

    def verify(written: bytes) -> None:
        again = _verify_jpeg(written, parsed)
        _verify_record(Packet.parse(jpeg.xmp_packet(again) or b""), request)
        _verify_exif(jpeg.exif_tiff(again), user_tiff, new_tiff, gps, lm)

    replaced = _replace(path, new_data, verify, preserve_mtime, read_as)
    return WriteResult(path, "embed", gps != "none", why_none, replaced)


def _unembed_jpeg(path: Path) -> tuple[bool, list[str]]:
    """Whether the file changed, and what of phototagger's could not be taken out of it."""
    read_as, parsed, packet, _ = _open_jpeg(path)
    record = xmp.read(packet)
    if record is None:
        return False, []
    _refuse_hard_link(path)
    tiff, stuck = _undo_exif_gps(jpeg.exif_tiff(parsed), record)
    xmp.strip(packet)
    drop_xmp = SEGMENT_XMP in record.added and packet.is_empty()
    segments = _rebuild(parsed, tiff, None if drop_xmp else packet.to_bytes())
    new_data = jpeg.Jpeg(segments, parsed.scan).chunks()

    def verify(written: bytes) -> None:
        again = _verify_jpeg(written, parsed)
        raw = jpeg.xmp_packet(again)
        if raw is not None:
            _no_record(raw)
        if jpeg.exif_tiff(again) != tiff:
            raise TagWriteError("verification failed: EXIF is not as it was")

    _replace(path, new_data, verify, False, read_as)
    return True, [stuck] if stuck else []


def _refuse_hard_link(path: Path) -> None:
    if path.stat().st_nlink > 1:
        raise _Refused("hard-linked file: replacing it would split the links")


def _verify_jpeg(written: bytes, original: jpeg.Jpeg) -> jpeg.Jpeg:
    """The written file parses, its image data and non-metadata segments are the original's."""
    try:
        again = jpeg.parse(written)
    except JpegStructureError as error:
        raise TagWriteError(f"verification failed: {error}") from None
    # Byte for byte, without copies: the written file must end with the original's image data.
    if len(again.scan) != len(original.scan) or not written.endswith(original.scan):
        raise TagWriteError("verification failed: image data changed")
    if _others(again) != _others(original):
        raise TagWriteError("verification failed: a non-metadata segment changed")
    return again


def _verify_exif(
    written: bytes | None, user: bytes | None, intended: bytes | None, gps: str, lm: Landmark
) -> None:
    if written != intended:
        raise TagWriteError("verification failed: EXIF differs from what was built")
    if gps != "exif" or written is None:
        return
    try:
        exif.parse_ifd0(written)
        position = exif.read_gps(written)
    except exif.ExifError as error:
        raise TagWriteError(f"verification failed: EXIF does not parse: {error}") from None
    if user is not None and (written[:4] != user[:4] or written[8 : len(user)] != user[8:]):
        raise TagWriteError("verification failed: original EXIF bytes moved")
    if (
        position is None
        or abs(position[0] - lm.latitude) > 1e-5
        or (abs(position[1] - lm.longitude) > 1e-5)
    ):
        raise TagWriteError("verification failed: GPS does not read back")


def _replace(
    path: Path,
    data: Chunks,
    verify: Callable[[bytes], None],
    preserve_mtime: bool,
    read_as: os.stat_result,
) -> Replaced:
    try:
        return atomic_write(
            path, data, verify, like=path, preserve_mtime=preserve_mtime, read_as=read_as
        )
    except ChangedMeanwhile:
        raise TagWriteError(f"{path}: {CHANGED_MEANWHILE}") from None
    except OwnerError as error:  # written as root for another user, who would lose the file
        raise _Refused(f"{error.strerror}: the file would change owner") from None
    except (OSError, ValueError) as error:  # ValueError: the written file does not parse
        raise TagWriteError(f"{path}: write failed, original untouched: {error}") from None


# -- PNG ----------------------------------------------------------------------------------
def _open_png(path: Path) -> tuple[bytes, os.stat_result, Packet, bool]:
    data, read_as = _read(path)
    try:
        raw = png.xmp_packet(data)
        packet = Packet.parse(raw) if raw is not None else Packet.empty()
        return data, read_as, packet, raw is not None
    except (PngStructureError, XmpError) as error:
        raise _Refused(f"PNG cannot be edited in place: {error}") from None


def _embed_png(path: Path, request: TagRequest, preserve_mtime: bool) -> WriteResult:
    data, read_as, packet, had_xmp = _open_png(path)
    record = xmp.read(packet)
    if _says_already(record, request):
        return WriteResult(target=path, mode="embed", gps_written=record.gps_written)
    elsewhere = xmp.has_position(packet) or _a_sidecar_says(path, xmp.has_position)
    why_none = _no_estimate(request, position.has_camera_gps(path), elsewhere)
    gps = "none" if why_none else "xmp"
    created = not had_xmp or (record is not None and SEGMENT_XMP in record.added)
    xmp.strip(packet)
    place = _a_sidecar_says(path, xmp.has_place)
    xmp.merge(packet, _entry(request, gps), None, [SEGMENT_XMP] * created, place)
    new_data = png.with_xmp(data, packet.to_bytes())
    digest = png.image_digest(data)

    def verify(written: bytes) -> None:
        try:
            same = png.image_digest(written) == digest
            raw = png.xmp_packet(written) or b""
        except PngStructureError as error:
            raise TagWriteError(f"verification failed: {error}") from None
        if not same:
            raise TagWriteError("verification failed: image chunks changed")
        _verify_record(Packet.parse(raw), request)

    replaced = _replace(path, new_data, verify, preserve_mtime, read_as)
    return WriteResult(path, "embed", gps != "none", why_none, replaced)


def _unembed_png(path: Path) -> tuple[bool, list[str]]:
    """Whether the file changed (a PNG's tags are all XMP: nothing is ever left behind)."""
    data, read_as, packet, _ = _open_png(path)
    record = xmp.read(packet)
    if record is None:
        return False, []
    _refuse_hard_link(path)
    xmp.strip(packet)
    drop = SEGMENT_XMP in record.added and packet.is_empty()
    new_data = png.with_xmp(data, None if drop else packet.to_bytes())
    digest = png.image_digest(data)

    def verify(written: bytes) -> None:
        if png.image_digest(written) != digest:
            raise TagWriteError("verification failed: image chunks changed")
        raw = png.xmp_packet(written)
        if raw is not None:
            _no_record(raw)

    _replace(path, new_data, verify, False, read_as)
    return True, []
