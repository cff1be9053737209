"""Sidecars, other formats, refusals and crashes: the original is never damaged."""

from __future__ import annotations

import os

import pytest
from PIL import Image

from phototagger.errors import TagWriteError
from phototagger.tags import atomic as atomic_mod
from phototagger.tags import png as png_mod
from phototagger.tags import read_tags, remove_tags, write_tags
from tests.tags.exiftool import exiftool_json, needs_exiftool, stable


def make_image(path, fmt, **kwargs):
    Image.new("RGB", (32, 24), (200, 30, 60)).save(path, fmt, **kwargs)
    return path


def test_sidecar_mode_leaves_original_byte_identical(photo, make_request):
    path = photo("Canon_40D.jpg")
    original = path.read_bytes()
    result = write_tags(path, make_request(), mode="sidecar")
    assert result.mode == "sidecar" and result.target == path.with_name("Canon_40D.jpg.xmp")
    assert result.gps_written  # no position anywhere: an XMP estimate in the sidecar
    write_tags(path, make_request(second=1), mode="sidecar")
    assert path.read_bytes() == original
    assert read_tags(path).where == result.target
    assert remove_tags(path).files_changed == [result.target]
    assert not result.target.exists() and path.read_bytes() == original


@needs_exiftool
def test_sidecar_merges_and_keeps_other_content(photo, make_request, tmp_path):
    path = photo("DSCN0010.jpg")
    side = path.with_name(path.name + ".xmp")
    side.write_text(
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        'xmlns:dk="http://example.org/unknown/" xmp:Rating="5" dk:Note="mine">'
        '<dc:subject xmlns:dc="http://purl.org/dc/elements/1.1/"><rdf:Bag><rdf:li>holiday'
        '</rdf:li></rdf:Bag></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta>'
    )
    before = stable(exiftool_json(side))
    result = write_tags(path, make_request(), mode="sidecar")
    assert result.target == side and not result.gps_written  # the camera has GPS
    tags = exiftool_json(side)
    assert tags["XMP-dc:Subject"] == ["holiday", "Eiffel Tower"]
    assert tags["XMP-xmp:Rating"] == 5
    assert "xmlns:dk=" in side.read_text()  # the unknown namespace keeps its prefix
    remove_tags(path)
    assert side.exists() and stable(exiftool_json(side)) == before


def test_lightroom_style_sidecar_is_read(photo, make_request, tmp_path):
    path = photo("Canon_40D.jpg")
    write_tags(path, make_request(), mode="sidecar")
    os.replace(path.with_name("Canon_40D.jpg.xmp"), path.with_suffix(".xmp"))
    assert read_tags(path).where == path.with_suffix(".xmp")


def test_read_only_file_gets_a_sidecar(photo, make_request):
    path = photo("Canon_40D.jpg")
    original = path.read_bytes()
    path.chmod(0o444)
    result = write_tags(path, make_request())
    assert result.mode == "sidecar" and result.reason == "the file is read-only"
    assert path.read_bytes() == original


def test_unwritable_folder_refuses_with_original_intact(photo, make_request, monkeypatch):
    path = photo("Canon_40D.jpg")
    original = path.read_bytes()

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(atomic_mod.tempfile, "mkstemp", denied)
    for mode in ("embed", "sidecar"):
        with pytest.raises(TagWriteError):
            write_tags(path, make_request(), mode=mode)
    assert path.read_bytes() == original


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_folder_refuses(photo, make_request):
    path = photo("Canon_40D.jpg")
    original = path.read_bytes()
    path.parent.chmod(0o555)
    try:
        with pytest.raises(TagWriteError):
            write_tags(path, make_request())
    finally:
        path.parent.chmod(0o755)
    assert path.read_bytes() == original


@pytest.mark.parametrize("victim", ["replace", "fsync"])
def test_crash_mid_write_leaves_original(photo, make_request, monkeypatch, victim):
    path = photo("Canon_DIGITAL_IXUS_400.jpg")
    original = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError(5, "simulated crash")

    monkeypatch.setattr(atomic_mod.os, victim, crash)
    with pytest.raises(TagWriteError):
        write_tags(path, make_request())
    assert path.read_bytes() == original
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


@pytest.mark.parametrize("kind", ["jpeg", "png", "sidecar", "new sidecar"])
def test_an_edit_another_program_makes_meanwhile_is_never_lost(photo, make_request, monkeypatch,
                                                               tmp_path, kind):
    """A sync tool or an editor saving the file while phototagger writes it: without a check,
    the rename would put back the content phototagger had read, and their edit would be lost."""
    path, mode = photo("Canon_DIGITAL_IXUS_400.jpg"), "embed"
    target = path
    if kind == "png":
        path = target = tmp_path / "drawing.png"
        Image.new("RGB", (16, 16), (10, 120, 200)).save(path)
    elif kind == "sidecar":
        mode, target = "sidecar", path.with_name(path.name + ".xmp")
        write_tags(path, make_request("eiffel-tower"), mode=mode)
    elif kind == "new sidecar":  # darktable, say, makes NAME.ext.xmp at the same moment
        mode, target = "sidecar", path.with_name(path.name + ".xmp")
    real_fsync, edits = atomic_mod.os.fsync, []

    def fsync_while_another_program_saves(fd):
        real_fsync(fd)
        if not edits:  # once, while the temp file is being made
            with open(target, "ab") as other:
                other.write(b"\n")
            edits.append(target.read_bytes())

    monkeypatch.setattr(atomic_mod.os, "fsync", fsync_while_another_program_saves)
    with pytest.raises(TagWriteError, match="changed by another program while being tagged"):
        write_tags(path, make_request("taj-mahal"), mode=mode)
    assert target.read_bytes() == edits[0]  # their version stands
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def _truncated(data: bytes) -> bytes:
    return data[:-10]


def _one_scan_byte_flipped(data: bytes) -> bytes:
    return data[:-100] + bytes([data[-100] ^ 0x01]) + data[-99:]


@pytest.mark.parametrize("damage", [_truncated, _one_scan_byte_flipped])
def test_failed_verification_leaves_original(photo, make_request, monkeypatch, damage):
    path = photo("Canon_DIGITAL_IXUS_400.jpg")
    original = path.read_bytes()
    real = atomic_mod.Path.read_bytes
    monkeypatch.setattr(atomic_mod.Path, "read_bytes", lambda self: damage(real(self)))
    with pytest.raises(TagWriteError, match="verification failed"):
        write_tags(path, make_request())
    monkeypatch.undo()
    assert path.read_bytes() == original
    assert [p.name for p in path.parent.iterdir()] == [path.name]


@needs_exiftool
def test_png_embeds_losslessly(tmp_path, make_request):
    path = make_image(tmp_path / "plain.png", "PNG")
    original = path.read_bytes()
    result = write_tags(path, make_request())
    assert result.mode == "embed" and result.gps_written
    assert png_mod.image_digest(path.read_bytes()) == png_mod.image_digest(original)
    tags = exiftool_json(path)
    assert tags["XMP-dc:Subject"] == ["Eiffel Tower"]
    assert tags["XMP-exif:GPSLatitude"] == pytest.approx(48.8584, abs=1e-5)
    with Image.open(path) as image:
        assert image.tobytes() == Image.open(tmp_path / "plain.png").tobytes()
    remove_tags(path)
    assert path.read_bytes() == original


@pytest.mark.parametrize("fmt, name", [("WEBP", "x.webp"), ("TIFF", "x.tif")])
def test_other_formats_get_sidecars(tmp_path, make_request, fmt, name):
    path = make_image(tmp_path / name, fmt)
    original = path.read_bytes()
    result = write_tags(path, make_request())
    assert result.mode == "sidecar" and result.reason
    assert path.read_bytes() == original
    assert read_tags(path).slug == "eiffel-tower"


def test_unicode_and_non_utf8_filenames(photo, make_request, tmp_path):
    path = photo("Canon_40D.jpg", "Tour Eiffel été 🗼.jpg")
    assert write_tags(path, make_request()).mode == "embed"
    assert read_tags(path).slug == "eiffel-tower"
    raw = os.fsencode(tmp_path) + b"/caf\xe9.jpg"  # Latin-1 byte, not valid UTF-8
    os.rename(path, raw)
    odd = tmp_path / os.fsdecode(b"caf\xe9.jpg")
    assert write_tags(odd, make_request("colosseum")).mode == "embed"
    assert write_tags(odd, make_request(), mode="sidecar").target.exists()
    assert remove_tags(odd).removed and read_tags(odd) is None


def test_extended_xmp_falls_back_to_sidecar(tmp_path, make_request):
    path = make_image(tmp_path / "ext.jpg", "JPEG")
    data = path.read_bytes()
    ext = b"http://ns.adobe.com/xmp/extension/\x00" + b"0" * 32 + b"\x00" * 8 + b"<x/>"
    data = data[:2] + b"\xff\xe1" + (len(ext) + 2).to_bytes(2, "big") + ext + data[2:]
    path.write_bytes(data)
    result = write_tags(path, make_request())
    assert result.mode == "sidecar" and "ExtendedXMP" in result.reason
    assert path.read_bytes() == data


def test_person_tag_and_missing_country(tmp_path, make_request):
    path = make_image(tmp_path / "dome.jpg", "JPEG")
    write_tags(path, make_request("dome-of-the-rock", confidence=None))
    record = read_tags(path)
    assert (record.source, record.confidence, record.model) == ("person", None, None)


def test_bad_requests_are_refused(tmp_path, make_request):
    path = make_image(tmp_path / "a.jpg", "JPEG")
    with pytest.raises(TagWriteError):
        write_tags(path, make_request(), mode="nowhere")
    with pytest.raises(TagWriteError):
        write_tags(tmp_path / "missing.jpg", make_request())


@needs_exiftool
def test_a_place_in_a_sidecar_keeps_phototaggers_out_of_the_file_and_back(photo, make_request):
    path = photo("Canon_40D.jpg")
    lightroom = path.with_suffix(".xmp")  # another tool's sidecar names a place
    lightroom.write_text(
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" '
        'photoshop:City="Hoboken"/></rdf:RDF></x:xmpmeta>'
    )
    write_tags(path, make_request("statue-of-liberty"))  # embedded in the JPEG
    embedded = exiftool_json(path)
    assert embedded["XMP-iptcExt:LocationShown"]  # what the photo shows is still said
    assert "XMP-photoshop:City" not in embedded and "XMP-photoshop:Country" not in embedded
    # The other way round: a place in the file keeps phototagger's out of its own sidecar.
    other = photo("Canon_DIGITAL_IXUS_400.jpg")
    write_tags(other, make_request("eiffel-tower"))  # the file now names Paris
    write_tags(other, make_request("statue-of-liberty"), mode="sidecar")
    side = exiftool_json(other.with_name(other.name + ".xmp"))
    assert side["XMP-photoshop:City"] == "New York City"  # Paris there is phototagger's own
