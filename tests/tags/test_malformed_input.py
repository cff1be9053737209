"""Malformed EXIF and unexpected failures: only TagWriteError ever leaves the tags layer."""

from __future__ import annotations

import pytest

from phototagger.errors import TagWriteError
from phototagger.tags import exif, read_tags, remove_tags, write_tags
from phototagger.tags import jpeg as jpeg_mod
from phototagger.tags import writer as writer_mod
from tests.tags.builders import insert_segment, plain_jpeg
from tests.tags.exiftool import exiftool_json, needs_exiftool


@needs_exiftool
@pytest.mark.parametrize("tiff", [b"II*\x00", b"MM\x00*\x00\x00", b"II*\x00\x08\x00\x00\x00\x01"])
def test_short_exif_block_is_left_alone(tmp_path, make_request, tiff):
    """Regression: APP1 'Exif\\0\\0II*\\0' made parse_ifd0 raise struct.error out of write_tags."""
    path = plain_jpeg(tmp_path / "short.jpg")
    insert_segment(path, jpeg_mod.APP1, jpeg_mod.EXIF_ID + tiff)
    result = write_tags(path, make_request())
    assert result.mode == "embed" and not result.gps_written
    assert "EXIF cannot be read" in result.reason
    assert jpeg_mod.exif_tiff(jpeg_mod.parse(path.read_bytes())) == tiff
    assert exiftool_json(path)["XMP-dc:Subject"] == ["Eiffel Tower"]
    assert remove_tags(path).removed and read_tags(path) is None


def test_exif_parser_raises_only_exif_error(photo, make_request):
    """Every truncation and every corrupted header byte of real blocks: ExifError or a result."""
    tagged = photo("Canon_40D.jpg")
    write_tags(tagged, make_request())
    blocks = [
        jpeg_mod.exif_tiff(jpeg_mod.parse(photo(name).read_bytes()))
        for name in ("Canon_DIGITAL_IXUS_400.jpg", "DSCN0010.jpg")
    ]
    blocks.append(jpeg_mod.exif_tiff(jpeg_mod.parse(tagged.read_bytes())))
    record = read_tags(tagged)
    assert record is not None
    variants = []
    for tiff in blocks:
        variants += [tiff[:n] for n in range(0, 400, 3)]
        for i in range(0, 300, 2):
            variants.append(tiff[:i] + b"\xff" + tiff[i + 1 :])
    for tiff in variants:
        for call in (
            lambda t: exif.parse_ifd0(t),
            lambda t: exif.read_gps(t),
            lambda t: exif.is_ours(t),
            lambda t: exif.add_gps(t, 48.8, 2.29, "x"),
            lambda t: exif.remove_gps(t, True),
            lambda t: exif.restore(t, 8, len(t) // 2),
        ):
            try:
                call(tiff)
            except exif.ExifError:
                pass


def test_unexpected_failure_becomes_one_line_tag_write_error(tmp_path, make_request, monkeypatch):
    path = plain_jpeg(tmp_path / "plain.jpg")
    original = path.read_bytes()

    def boom(*args, **kwargs):
        raise KeyError("a bug\nover two lines")

    monkeypatch.setattr(writer_mod.xmp, "merge", boom)
    with pytest.raises(TagWriteError) as caught:
        write_tags(path, make_request())
    assert "\n" not in str(caught.value) and "original untouched" in str(caught.value)
    monkeypatch.undo()
    write_tags(path, make_request())
    tagged = path.read_bytes()
    monkeypatch.setattr(writer_mod.xmp, "strip", boom)
    with pytest.raises(TagWriteError):
        remove_tags(path)
    assert path.read_bytes() == tagged
    monkeypatch.undo()
    remove_tags(path)
    assert path.read_bytes() == original


def test_tags_behind_an_mpf_index_refuse_removal_cleanly(tmp_path, make_request):
    """Regression: _rebuild's MPF refusal (_Refused) escaped remove_tags."""
    path = plain_jpeg(tmp_path / "mpo.jpg")
    write_tags(path, make_request())
    insert_segment(path, jpeg_mod.APP2, jpeg_mod.MPF_ID + b"MM\x00*\x00\x00\x00\x08", index=1)
    tagged = path.read_bytes()
    with pytest.raises(TagWriteError, match="cannot be removed losslessly"):
        remove_tags(path)
    assert path.read_bytes() == tagged
    assert read_tags(path).slug == "eiffel-tower"
