"""Does the photo have a position: yes, no, or unknown, and no estimate unless a sure no."""

from __future__ import annotations

import pytest
from PIL import Image

from phototagger.tags import read_camera_gps, write_tags
from phototagger.tags.position import has_camera_gps
from tests.tags.builders import gps_block, retype_gps_refs, retype_ifd0_entry
from tests.tags.exiftool import exiftool_json, needs_exiftool

TYPE_14 = 14  # not a TIFF type: exiftool and phototagger cannot walk the entry


def test_three_answers(photo):
    assert has_camera_gps(photo("DSCN0010.jpg")) is True
    assert has_camera_gps(photo("Canon_40D.jpg")) is False  # a GPS IFD without a position
    broken = photo("DSCN0010.jpg", "broken.jpg")
    retype_ifd0_entry(broken, 0x010F, TYPE_14)  # Make
    assert has_camera_gps(broken) is None
    assert read_camera_gps(broken) is None  # callers still read None: no usable position


@needs_exiftool
def test_sidecar_writes_no_estimate_when_exif_is_unreadable(photo, make_request):
    """Regression: a parse error read as "no position" and put an estimate in the sidecar."""
    path = photo("DSCN0010.jpg")
    retype_ifd0_entry(path, 0x010F, TYPE_14)
    result = write_tags(path, make_request(), mode="sidecar")
    assert not result.gps_written and "EXIF cannot be read" in result.reason
    tags = exiftool_json(result.target)
    assert "XMP-exif:GPSLatitude" not in tags and tags["XMP-dc:Subject"] == ["Eiffel Tower"]


@needs_exiftool
def test_png_with_unreadable_exif_gets_no_estimate(tmp_path, make_request):
    path = tmp_path / "broken.png"
    Image.new("RGB", (16, 16)).save(path, "PNG", exif=b"II*\x00\x08\x00\x00")
    result = write_tags(path, make_request())
    assert result.mode == "embed" and not result.gps_written
    assert "XMP-exif:GPSLatitude" not in exiftool_json(path)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF"])
def test_camera_gps_in_other_formats(tmp_path, make_request, fmt):
    """One reader for every format: refs stored as UNDEFINED still give south and west."""
    path = tmp_path / f"gps.{fmt.lower()}"
    block = retype_gps_refs(gps_block((33, 26, 0), (70, 40, 0), refs="SW"), 7)
    Image.new("RGB", (16, 16)).save(path, fmt, exif=block)
    assert read_camera_gps(path) == pytest.approx((-33.4333, -70.6667), abs=1e-4)
    assert not write_tags(path, make_request()).gps_written


def test_out_of_range_camera_gps_is_not_a_position(tmp_path):
    path = tmp_path / "far.webp"
    Image.new("RGB", (16, 16)).save(path, "WEBP", exif=gps_block((95, 0, 0), (10, 0, 0)))
    assert read_camera_gps(path) is None and has_camera_gps(path) is None
