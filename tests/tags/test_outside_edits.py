"""Another tool edits the EXIF after phototagger: untag and re-tag keep its work and stay true."""

from __future__ import annotations

import subprocess

import pytest

from phototagger.errors import TagWriteError
from phototagger.tags import exif, read_camera_gps, read_tags, remove_tags, write_tags
from phototagger.tags import writer as writer_mod
from tests.tags.builders import plain_jpeg
from tests.tags.exiftool import EXIFTOOL, exiftool_json, group, needs_exiftool, stable

pytestmark = needs_exiftool


def exiftool_set(path, *assignments: str) -> None:
    subprocess.run([EXIFTOOL, "-q", "-overwrite_original", *assignments, str(path)], check=True)


def test_untouched_exif_block_of_ours_is_dropped_exactly(tmp_path, make_request):
    path = plain_jpeg(tmp_path / "plain.jpg")
    original = path.read_bytes()
    assert write_tags(path, make_request()).gps_written
    assert remove_tags(path).left == []
    assert path.read_bytes() == original


def test_untag_keeps_exif_another_tool_added_to_our_block(tmp_path, make_request):
    """Regression: the whole EXIF segment phototagger created was dropped, Artist with it."""
    path = plain_jpeg(tmp_path / "plain.jpg")
    write_tags(path, make_request())
    exiftool_set(path, "-Artist=Jane", "-Copyright=x")
    result = remove_tags(path)
    after = exiftool_json(path)
    assert result.removed and result.left == []
    assert (after["IFD0:Artist"], after["IFD0:Copyright"]) == ("Jane", "x")
    assert group(after, "GPS") == {} and "Warning" not in " ".join(after)
    assert read_tags(path) is None and read_camera_gps(path) is None


def test_gps_another_tool_added_to_our_gps_ifd_is_kept(tmp_path, make_request):
    path = plain_jpeg(tmp_path / "plain.jpg")
    write_tags(path, make_request())
    exiftool_set(path, "-GPSAltitude=35", "-GPSAltitudeRef=0")
    remove_tags(path)
    after = exiftool_json(path)
    assert after["GPS:GPSAltitude"] == 35
    assert "GPS:GPSLatitude" not in after and "GPS:GPSProcessingMethod" not in after


def test_retag_after_outside_rewrite_moves_the_estimate(photo, make_request):
    """Regression: the old estimate (Agra) stayed beside XMP saying Rome, and untag left it."""
    path = photo("Canon_DIGITAL_IXUS_400.jpg")
    before = exiftool_json(path)
    write_tags(path, make_request("taj-mahal"))
    exiftool_set(path, "-Artist=Jane")  # exiftool rewrites the whole EXIF block
    result = write_tags(path, make_request("colosseum", second=1))
    tags = exiftool_json(path)
    assert result.gps_written and tags["XMP-photoshop:City"] == "Rome"
    assert (tags["GPS:GPSLatitude"], tags["GPS:GPSLongitude"]) == pytest.approx(
        (41.8902, 12.4922), abs=1e-5
    )
    assert "Colosseum" in tags["GPS:GPSProcessingMethod"]
    removed = remove_tags(path)
    after = exiftool_json(path)
    assert removed.removed and removed.left == []
    assert group(after, "GPS") == {} and after["IFD0:Artist"] == "Jane"
    assert group(after, "Canon") == group(before, "Canon")  # maker notes still read
    moved = {"IFD0:Artist", "IFD1:ThumbnailOffset"}  # exiftool laid the block out anew
    assert stable({k: v for k, v in after.items() if k not in moved}) == stable(
        {k: v for k, v in before.items() if k not in moved}
    )


def test_stale_estimate_that_cannot_be_removed_is_reported(photo, make_request, monkeypatch):
    path = photo("Canon_DIGITAL_IXUS_400.jpg")
    write_tags(path, make_request("taj-mahal"))
    exiftool_set(path, "-Artist=Jane")
    rewritten = path.read_bytes()

    def cannot(*args, **kwargs):
        raise exif.ExifError("simulated layout")

    monkeypatch.setattr(writer_mod.exif, "remove_gps", cannot)
    with pytest.raises(TagWriteError, match="estimated GPS left in place"):
        write_tags(path, make_request("colosseum", second=1))
    assert path.read_bytes() == rewritten  # never Agra's GPS beside Rome's XMP
    result = remove_tags(path)
    assert result.removed and result.left
    assert result.left[0].startswith("estimated GPS left in place: EXIF rewritten by another tool")
    assert read_tags(path) is None
    assert exiftool_json(path)["GPS:GPSLatitude"] == pytest.approx(27.1751, abs=1e-5)
