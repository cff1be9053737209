"""Embedding into real camera JPEGs, checked with exiftool and Pillow as independent readers."""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess

import pytest
from PIL import Image

from phototagger.tags import jpeg as jpeg_mod
from phototagger.tags import read_camera_gps, read_tags, remove_tags, write_tags
from tests.tags.builders import insert_segment, plain_jpeg
from tests.tags.exiftool import EXIFTOOL, exiftool_json, group, needs_exiftool, stable

pytestmark = needs_exiftool
CAMERA_GROUPS = ("IFD0", "ExifIFD", "IFD1", "InteropIFD", "Canon", "Nikon", "MakerNotes",
                 "GPS", "ICC", "JFIF", "IPTC", "Photoshop")


def pixels(path):
    with Image.open(path) as image:
        return image.tobytes()


def scan_hash(path):
    return hashlib.sha256(jpeg_mod.parse(path.read_bytes()).scan).hexdigest()


def test_maker_notes_survive_and_gps_is_an_estimate(photo, make_request):
    path = photo("Canon_DIGITAL_IXUS_400.jpg")
    before = exiftool_json(path)
    pixels_before, scan_before = pixels(path), scan_hash(path)
    result = write_tags(path, make_request())
    after = exiftool_json(path)
    assert result.mode == "embed" and result.gps_written and result.target == path
    maker = group(before, "Canon")
    assert len(maker) > 50
    assert group(after, "Canon") == maker
    camera = group(before, *CAMERA_GROUPS)
    assert {k: after.get(k) for k in camera} == camera
    assert after["GPS:GPSVersionID"] == "2 3 0 0"
    assert after["GPS:GPSLatitude"] == pytest.approx(48.8584, abs=1e-5)
    assert after["GPS:GPSLongitude"] == pytest.approx(2.2945, abs=1e-5)
    assert after["GPS:GPSProcessingMethod"].startswith("phototagger: estimated from landmark")
    assert pixels(path) == pixels_before and scan_hash(path) == scan_before
    assert "Warning" not in " ".join(after)
    assert read_camera_gps(path) is None  # an estimate is not camera GPS


def test_xmp_fields_read_as_intended(photo, make_request):
    path = photo("Canon_DIGITAL_IXUS_400.jpg")
    write_tags(path, make_request())
    tags = exiftool_json(path)
    shown = tags["XMP-iptcExt:LocationShown"]
    assert shown == [{
        "LocationName": "Eiffel Tower", "City": "Paris", "ProvinceState": "Ile-de-France",
        "CountryName": "France", "CountryCode": "FR",
        "GPSLatitude": pytest.approx(48.8584, abs=1e-5),
        "GPSLongitude": pytest.approx(2.2945, abs=1e-5),
    }]
    assert tags["XMP-iptcCore:Location"] == "Eiffel Tower"
    assert tags["XMP-photoshop:City"] == "Paris"
    assert tags["XMP-photoshop:Country"] == "France"
    assert tags["XMP-dc:Subject"] == ["Eiffel Tower"]
    assert tags["XMP-lr:HierarchicalSubject"] == ["Places|France|Paris|Eiffel Tower"]
    assert tags["XMP-digiKam:TagsList"] == ["Places/France/Paris/Eiffel Tower"]
    assert tags["XMP-phototagger:Model"] == "tiny-test-model@0.0.1+abc123"
    record = read_tags(path)
    assert (record.slug, record.confidence, record.source, record.where) == (
        "eiffel-tower", 0.93, "model", path)


@pytest.mark.parametrize("name", ["Canon_DIGITAL_IXUS_400.jpg", "Canon_40D.jpg"])
def test_untag_restores_exactly(photo, make_request, name):
    path = photo(name)
    original = path.read_bytes()
    exif_before = jpeg_mod.exif_tiff(jpeg_mod.parse(original))
    had_xmp = jpeg_mod.xmp_packet(jpeg_mod.parse(original)) is not None
    before = stable(exiftool_json(path))
    write_tags(path, make_request())
    result = remove_tags(path)
    assert result.removed and result.files_changed == [path]
    assert stable(exiftool_json(path)) == before
    # EXIF: the appended GPS tail is cut off, giving back the original bytes exactly
    assert jpeg_mod.exif_tiff(jpeg_mod.parse(path.read_bytes())) == exif_before
    if not had_xmp:  # the XMP segment phototagger made is dropped: the whole file is as it was
        assert path.read_bytes() == original
    assert read_tags(path) is None
    assert remove_tags(path).removed is False


def test_camera_gps_is_never_overwritten(photo, make_request):
    path = photo("DSCN0010.jpg")
    before = exiftool_json(path)
    camera = read_camera_gps(path)
    assert camera == pytest.approx((43.4674, 11.8851), abs=1e-3)
    result = write_tags(path, make_request())
    after = exiftool_json(path)
    assert not result.gps_written
    assert group(after, "GPS") == group(before, "GPS")
    assert read_camera_gps(path) == camera
    assert "XMP-exif:GPSLatitude" not in after


def test_gps_ifd_without_position_is_completed(photo, make_request):
    path = photo("Canon_40D.jpg")
    before = exiftool_json(path)
    assert write_tags(path, make_request("colosseum")).gps_written
    after = exiftool_json(path)
    assert after["GPS:GPSVersionID"] == before["GPS:GPSVersionID"]  # the camera's, kept
    assert after["GPS:GPSLatitude"] == pytest.approx(41.8902, abs=1e-5)
    remove_tags(path)
    assert stable(exiftool_json(path)) == stable(before)


def test_southern_western_signs(photo, gazetteer, make_request):
    path = photo("Canon_DIGITAL_IXUS_400.jpg")
    request = make_request("statue-of-liberty")
    write_tags(path, request)
    tags = exiftool_json(path)
    assert tags["GPS:GPSLongitudeRef"] == "W"
    assert tags["Composite:GPSLongitude"] == pytest.approx(-74.0445, abs=1e-5)
    assert read_tags(path).gps_written


def test_rotated_photo_keeps_orientation_and_pixels(photo, make_request):
    path = photo("portrait_6.jpg")
    before = exiftool_json(path)
    pixels_before = pixels(path)
    write_tags(path, make_request())
    after = exiftool_json(path)
    assert after["IFD0:Orientation"] == before["IFD0:Orientation"] == 6
    assert pixels(path) == pixels_before


def test_retag_replaces_and_keeps_other_tools_xmp(photo, make_request):
    path = photo("BlueSquare.jpg")
    before = exiftool_json(path)
    write_tags(path, make_request("eiffel-tower"))
    write_tags(path, make_request("eiffel-tower", second=1))
    write_tags(path, make_request("colosseum", second=2))
    tags = exiftool_json(path)
    assert tags["XMP-dc:Subject"] == [*before["XMP-dc:Subject"], "Colosseum"]
    assert tags["XMP-lr:HierarchicalSubject"] == ["Places|Italy|Rome|Colosseum"]
    assert tags["XMP-photoshop:City"] == "Rome"
    assert len(tags["XMP-iptcExt:LocationShown"]) == 1
    assert tags["XMP-dc:Title"] == before["XMP-dc:Title"]
    assert tags["XMP-xmpMM:DocumentID"] == before["XMP-xmpMM:DocumentID"]
    assert read_tags(path).slug == "colosseum"
    remove_tags(path)
    assert stable(exiftool_json(path)) == stable(before)


def test_users_single_values_are_kept(photo, make_request):
    path = photo("BlueSquare.jpg")
    subprocess.run([EXIFTOOL, "-q", "-overwrite_original", "-XMP-photoshop:City=Lutetia",
                    "-XMP-xmp:Rating=4", "-XMP-dc:Subject+=Paris", str(path)], check=True)
    before = exiftool_json(path)
    write_tags(path, make_request())
    tags = exiftool_json(path)
    assert tags["XMP-photoshop:City"] == "Lutetia"
    assert tags["XMP-xmp:Rating"] == 4
    assert tags["XMP-dc:Subject"].count("Paris") == 1
    remove_tags(path)
    assert stable(exiftool_json(path)) == stable(before)


def test_broken_exif_is_left_alone(photo, make_request):
    path = photo("broken_exif_30-type_error.jpg")
    exif_before = jpeg_mod.exif_tiff(jpeg_mod.parse(path.read_bytes()))
    result = write_tags(path, make_request())
    assert result.mode == "embed" and not result.gps_written
    assert jpeg_mod.exif_tiff(jpeg_mod.parse(path.read_bytes())) == exif_before
    assert exiftool_json(path)["XMP-dc:Subject"] == ["Eiffel Tower"]
    assert read_camera_gps(path) is None


def test_preserve_mtime_and_permissions(photo, make_request):
    path = photo("Canon_40D.jpg")
    path.chmod(0o640)
    os.utime(path, (1_000_000_000, 1_000_000_000))
    write_tags(path, make_request(), preserve_mtime=True)
    assert path.stat().st_mtime == 1_000_000_000
    assert path.stat().st_mode & 0o777 == 0o640
    write_tags(path, make_request("taj-mahal"))  # without preserve_mtime: the time it changed
    assert path.stat().st_mtime > 1_000_000_000


@pytest.mark.parametrize("relative", ["mobile/jolla.jpg", "tests/28-hex_value.jpg"])
def test_shared_samples_round_trip(shared_data, tmp_path, make_request, relative):
    """Regressions: jolla's IFD0 is not in tag order; 28-hex_value reuses one XMP prefix."""
    path = tmp_path / "sample.jpg"
    path.write_bytes((shared_data / "exif-samples" / "jpg" / relative).read_bytes())
    before = stable(exiftool_json(path))
    assert write_tags(path, make_request()).mode == "embed"
    remove_tags(path)
    assert stable(exiftool_json(path)) == before


def test_users_place_is_not_mixed_with_ours(photo, make_request):
    """Regression: the user's City=Paris got State, Country and Location from the Taj Mahal."""
    path = photo("BlueSquare.jpg")
    subprocess.run([EXIFTOOL, "-q", "-overwrite_original", "-XMP-photoshop:City=Paris",
                    str(path)], check=True)
    before = exiftool_json(path)
    write_tags(path, make_request("taj-mahal"))
    tags = exiftool_json(path)
    assert tags["XMP-photoshop:City"] == "Paris"
    for ours in ("XMP-photoshop:State", "XMP-photoshop:Country", "XMP-iptcCore:Location",
                 "XMP-iptcCore:CountryCode"):
        assert ours not in tags
    assert tags["XMP-iptcExt:LocationShown"][0]["City"] == "Agra"
    assert "Taj Mahal" in tags["XMP-dc:Subject"] and tags["XMP-phototagger:Slug"] == "taj-mahal"
    remove_tags(path)
    assert stable(exiftool_json(path)) == stable(before)


def test_our_description_is_about_what_the_packet_is_about(tmp_path, make_request):
    """XMP wants one rdf:about throughout; Windows Photo Gallery writes a uuid there."""
    path = plain_jpeg(tmp_path / "gallery.jpg")
    about = "uuid:faf5bdd5-ba3d-11da-ad31-d33d75182f1b"
    rdf = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
    packet = (f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="{rdf}">'
              f'<rdf:Description rdf:about="{about}" xmlns:xmp="http://ns.adobe.com/xap/1.0/">'
              "<xmp:CreatorTool>Windows Photo Gallery</xmp:CreatorTool></rdf:Description>"
              "</rdf:RDF></x:xmpmeta>")
    insert_segment(path, jpeg_mod.APP1, jpeg_mod.XMP_ID + packet.encode(), index=1)
    write_tags(path, make_request("taj-mahal"))
    written = jpeg_mod.xmp_packet(jpeg_mod.parse(path.read_bytes())).decode()
    assert written.count("<rdf:Description") == 2
    assert written.count(f'rdf:about="{about}"') == 2
    checked = subprocess.run([EXIFTOOL, "-validate", "-warning", "-a", "-s3", str(path)],
                             capture_output=True, text=True, check=True).stdout
    assert "rdf:about" not in checked, checked
    assert exiftool_json(path)["XMP-xmp:CreatorTool"] == "Windows Photo Gallery"


@pytest.mark.parametrize(("density", "resolution", "unit"), [
    ((0, 1, 1), (72, 72), 2),  # Pillow's JFIF: square pixels, no absolute density
    ((1, 300, 300), (300, 300), 2),  # 300 dots per inch
    ((2, 118, 118), (118, 118), 3),  # per centimetre
    ((0, 2, 1), (144, 72), 2),  # an aspect ratio only: kept, at EXIF's default density
])
def test_a_photo_without_exif_gets_a_well_formed_gps_block(tmp_path, make_request, density,
                                                           resolution, unit):
    path = plain_jpeg(tmp_path / "scrubbed.jpg")  # metadata scrubbed: the case users have most
    data = bytearray(path.read_bytes())
    at = data.index(b"JFIF\x00") + 7
    data[at : at + 5] = struct.pack(">BHH", *density)  # the density JFIF states
    path.write_bytes(data)
    original = path.read_bytes()
    write_tags(path, make_request("statue-of-liberty"))
    tags = exiftool_json(path)
    assert tags["GPS:GPSLongitudeRef"] == "W"
    assert tags["Composite:GPSLatitude"] == pytest.approx(40.6892, abs=1e-4)
    # EXIF's mandatory IFD0 tags claim what JFIF says, or EXIF's default where it says less
    assert (tags["IFD0:XResolution"], tags["IFD0:YResolution"]) == resolution
    assert tags["IFD0:ResolutionUnit"] == unit  # 2 inches, 3 centimetres
    checked = subprocess.run([EXIFTOOL, "-validate", "-warning", "-a", "-s3", str(path)],
                             capture_output=True, text=True, check=True).stdout.splitlines()
    warnings = [line for line in checked if "Warning" not in line and line != "OK"]
    # Never a broken structure ("... overlaps IFD" from piexif's block) nor a missing mandatory
    # tag: only the marking that GPSProcessingMethod carries, which the issue asks for.
    assert warnings == ["Invalid value for GPS tag 0x001b GPSProcessingMethod"], warnings
    remove_tags(path)
    assert path.read_bytes() == original
