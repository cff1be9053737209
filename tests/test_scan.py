"""The scan pipeline end to end: real files, a real SQLite index, the real tag writer."""

import logging
import multiprocessing
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest
import torch
from PIL import Image
from sqlalchemy import func, select

from images import gps_exif, write_image, write_jpeg
from phototagger import tags
from phototagger.corrections import remove_landmark
from phototagger.errors import IndexLockedError
from phototagger.hashing import file_hash
from phototagger.index import Library
from phototagger.index import tables as orm
from phototagger.model import LandmarkModel
from phototagger.scan import dataset, decode, pipeline
from phototagger.scan.engines import local
from phototagger.scan.engines.local import LocalEngine
from phototagger.scan.infer import Inference
from phototagger.scan.pipeline import Scanner, ScanOptions
from phototagger.scan.record import Recorder
from phototagger.vocabulary import Vocabulary
from postgres_cluster import both_backends
from tiny_model import build_tiny_model

#: A patch made here reaches DataLoader workers only when they are forked (Linux up to
#: Python 3.13); spawned or forkserver workers import the module afresh.
needs_forked_workers = pytest.mark.skipif(
    multiprocessing.get_start_method() != "fork", reason="workers are not forked here"
)


def scan(library, model, root, **options):
    options.setdefault("workers", 0)
    return Scanner(library, model, ScanOptions(**options)).run([root])


def local_engine(model, **options) -> LocalEngine:
    """The local engine as a scan with these options makes it (no learned landmarks)."""
    return LocalEngine(Inference(model, Vocabulary([])), ScanOptions(**options),
                       threading.Event())


def photos(library) -> dict[str, orm.Photo]:
    with library.session() as session:
        rows = session.scalars(select(orm.Photo)).unique().all()
        return {Path(row.fs_path).name: row for row in rows}


def test_scan_indexes_predicts_and_tags_every_format(library, model, tmp_path):
    root = tmp_path / "photos"
    write_jpeg(root / "paris" / "tower.jpg", seed=1)
    # near the Taj Mahal, the tiny model's answer: a camera far from it would veto the tag
    write_jpeg(root / "camera-gps.jpg", seed=2, exif=gps_exif(27.1682, 78.0301))
    write_image(root / "shot.png", "PNG", seed=3)
    write_image(root / "shot.webp", "WEBP", seed=4)
    write_image(root / "scan.tiff", "TIFF", seed=5)
    write_image(root / "phone.HEIC", "HEIF", seed=6)  # pillow-heif registered by imaging
    summary = scan(library, model, root)
    assert (summary.found, summary.new, summary.tagged, summary.failed) == (6, 6, 6, [])
    indexed = photos(library)
    assert set(indexed) == {"tower.jpg", "camera-gps.jpg", "shot.png", "shot.webp", "scan.tiff",
                            "phone.HEIC"}
    assert indexed["phone.HEIC"].format == "heif"
    assert tags.read_tags(root / "phone.HEIC").where == root / "phone.HEIC.xmp"
    tower = indexed["tower.jpg"]
    assert (tower.status, tower.width, tower.height, tower.format) == ("ok", 320, 240, "jpeg")
    assert tower.tag_state == "auto" and tower.landmark_slug is not None
    with library.session() as session:
        assert session.scalar(select(func.count()).select_from(orm.Prediction)) == 6 * 5
    written = tags.read_tags(root / "paris" / "tower.jpg")
    assert written.slug == tower.landmark_slug and written.source == "model"
    assert written.where == root / "paris" / "tower.jpg"  # embedded in the JPEG itself
    assert tags.read_tags(root / "shot.png").where == root / "shot.png"  # an iTXt chunk
    assert tags.read_tags(root / "scan.tiff").where == root / "scan.tiff.xmp"  # a sidecar
    camera = indexed["camera-gps.jpg"]
    assert camera.camera_latitude == pytest.approx(27.1682, abs=1e-4)
    assert tags.read_camera_gps(root / "camera-gps.jpg") == pytest.approx((27.1682, 78.0301),
                                                                           abs=1e-4)


@both_backends
def test_rescan_opens_nothing_unchanged_and_follows_moves(library, model, tmp_path, monkeypatch):
    root = tmp_path / "photos"
    for seed in range(4):
        write_jpeg(root / f"IMG_{seed}.jpg", seed=seed)
    assert scan(library, model, root, threshold=0.0).tagged == 4
    before = photos(library)
    for name, photo in before.items():  # the files as the tag writer left them
        info = (root / name).stat()
        assert (photo.size, photo.mtime_ns) == (info.st_size, info.st_mtime_ns)
        assert photo.content_hash == file_hash(str(root / name))

    def no_decoding(*args, **kwargs):
        raise AssertionError("an unchanged or moved photo was decoded")

    monkeypatch.setattr(decode, "prepare", no_decoding)
    summary = scan(library, model, root)
    assert (summary.unchanged, summary.predicted, summary.tagged) == (4, 0, 0)

    (root / "trip").mkdir()
    (root / "IMG_1.jpg").rename(root / "trip" / "renamed.jpg")
    summary = scan(library, model, root)
    assert (summary.moved, summary.unchanged, summary.new, summary.missing) == (1, 3, 0, 0)
    after = photos(library)
    assert "IMG_1.jpg" not in after
    assert after["renamed.jpg"].id == before["IMG_1.jpg"].id
    assert after["renamed.jpg"].landmark_slug == before["IMG_1.jpg"].landmark_slug

    (root / "IMG_2.jpg").unlink()
    assert scan(library, model, root).missing == 1
    assert photos(library)["IMG_2.jpg"].status == "missing"
    with library.session() as session:  # each run and its summary, as the index keeps them
        runs = session.scalars(select(orm.Run).order_by(orm.Run.id)).all()
        assert [run.summary["predicted"] for run in runs] == [4, 0, 0, 0]


def test_a_library_reached_through_a_link_is_the_same_library(library, model, tmp_path):
    root = tmp_path / "photos"
    for seed in range(3):
        write_jpeg(root / "trip" / f"IMG_{seed}.jpg", seed=seed)
    os.symlink(root, tmp_path / "link")
    assert scan(library, model, root).new == 3
    summary = scan(library, model, tmp_path / "link" / "trip")
    assert (summary.found, summary.new, summary.unchanged) == (3, 0, 3)
    with library.session() as session:
        assert session.scalar(select(func.count()).select_from(orm.Photo)) == 3
        under_link = library.find(session, under=tmp_path / "link" / "trip")
        assert len(under_link) == 3
        through_link = library.indexed_path(session, tmp_path / "link" / "trip" / "IMG_0.jpg")
        assert through_link == str(root / "trip" / "IMG_0.jpg")


def test_a_linked_folder_inside_the_library_keeps_its_name(library, model, tmp_path):
    root, card = tmp_path / "Pictures", tmp_path / "sd-card"
    write_jpeg(card / "IMG_0.jpg", seed=0)
    root.mkdir()
    os.symlink(card, root / "phone")
    scan(library, model, root, threshold=0.0, follow_links=True)
    photo = root / "phone" / "IMG_0.jpg"
    assert list(photos(library)) == ["IMG_0.jpg"]
    assert remove_landmark(library, [photo])[0].ok
    summary = scan(library, model, root, threshold=0.0)  # the person's removal holds
    assert (summary.unchanged, summary.tagged) == (1, 0)
    assert photos(library)["IMG_0.jpg"].tag_state == "removed"
    with library.session() as session:
        assert library.indexed_path(session, photo) == str(photo)  # as the walk names it


def test_a_scan_writes_only_inside_its_folders_unless_told_to_follow_links(
    library, model, tmp_path
):
    root, elsewhere = tmp_path / "Pictures", tmp_path / "elsewhere"
    write_jpeg(root / "inside" / "IMG_0.jpg", seed=0)
    write_jpeg(elsewhere / "trip" / "IMG_1.jpg", seed=1)
    write_jpeg(elsewhere / "IMG_2.jpg", seed=2)
    os.symlink(root / "inside", root / "again")  # inside the library: followed, found once
    os.symlink(elsewhere / "trip", root / "trip")
    os.symlink(elsewhere / "IMG_2.jpg", root / "IMG_2.jpg")

    def files():  # every file there, sidecars included
        return {path: path.read_bytes() for path in elsewhere.rglob("*") if path.is_file()}

    before = files()
    summary = scan(library, model, root, threshold=0.0, write="sidecar")
    assert (summary.found, summary.tagged, summary.outside_links) == (1, 1, 2)
    assert list(photos(library)) == ["IMG_0.jpg"]
    assert files() == before  # not a byte written there
    assert (root / "inside" / "IMG_0.jpg.xmp").is_file()

    summary = scan(library, model, root, threshold=0.0, write="sidecar", follow_links=True)
    assert (summary.new, summary.tagged, summary.outside_links) == (2, 2, 0)
    assert (elsewhere / "trip" / "IMG_1.jpg.xmp").is_file()
    with library.session() as session:  # what they lead to is library now: the app serves it
        for path in (elsewhere / "trip" / "IMG_1.jpg", elsewhere / "IMG_2.jpg"):
            assert library.is_inside_roots(session, path)
        assert not library.is_inside_roots(session, elsewhere / "other.jpg")
    assert scan(library, model, root).outside_links == 0  # and stays so


def test_an_index_that_knows_a_library_by_a_link_keeps_that_name(library, model, tmp_path):
    real = tmp_path / "photos"
    write_jpeg(real / "IMG_0.jpg", seed=0)
    os.symlink(real, tmp_path / "link")
    with library.session() as session:  # as phototagger before 0.x recorded a linked root
        session.add(orm.Root(path=str(tmp_path / "link")))
        session.commit()
    assert scan(library, model, tmp_path / "link").new == 1
    summary = scan(library, model, real)
    assert (summary.new, summary.unchanged) == (0, 1)
    assert [p.fs_path for p in photos(library).values()] == [str(tmp_path / "link" / "IMG_0.jpg")]


def tag_in_a_sidecar_and_move(library, model, root: Path, new_name: str) -> tuple[Path, str]:
    """A photo tagged through a sidecar, then moved alone, as a file manager moves it."""
    photo = write_jpeg(root / "inbox" / "IMG_1.jpg")
    scan(library, model, root, threshold=0.0, write="sidecar")
    landmark = tags.read_tags(photo).slug
    moved = root / "trips" / new_name
    moved.parent.mkdir()
    photo.rename(moved)
    return moved, landmark


def test_a_photo_tagged_through_a_sidecar_takes_it_along_when_moved(library, model, tmp_path):
    root = tmp_path / "photos"
    moved, landmark = tag_in_a_sidecar_and_move(library, model, root, "rome.jpg")
    summary = scan(library, model, root, threshold=0.0, write="sidecar")
    assert (summary.moved, summary.predicted) == (1, 0)
    assert not (root / "inbox" / "IMG_1.jpg.xmp").exists()
    assert tags.read_tags(moved).slug == landmark
    assert tags.read_tags(moved).where == root / "trips" / "rome.jpg.xmp"
    with library.session() as session:
        targets = session.scalars(select(orm.Write.target)).all()
    assert targets == [str(root / "trips" / "rome.jpg.xmp")]
    assert remove_landmark(library, [str(moved)])[0].ok  # untag finds it at the new place
    assert list((root / "trips").iterdir()) == [moved]


def test_a_sidecar_that_cannot_follow_its_photo_is_written_again_at_the_new_place(
    library, model, tmp_path
):
    root = tmp_path / "photos"
    moved, landmark = tag_in_a_sidecar_and_move(library, model, root, "IMG_1.jpg")
    theirs = root / "trips" / "IMG_1.jpg.xmp"  # another tool's sidecar is there already
    theirs.write_text(
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
        'rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="4"/>'
        "</rdf:RDF></x:xmpmeta>"
    )
    summary = scan(library, model, root, threshold=0.0, write="sidecar")
    assert summary.moved == 1
    assert not (root / "inbox" / "IMG_1.jpg.xmp").exists()  # held only phototagger's entries
    assert 'xmp:Rating="4"' in theirs.read_text() and tags.read_tags(moved) is None
    summary = scan(library, model, root, threshold=0.0, write="sidecar")
    assert summary.retried == 1
    assert tags.read_tags(moved).slug == landmark and 'xmp:Rating="4"' in theirs.read_text()


def test_changed_file_and_new_model_predict_again(library, model, tmp_path):
    root = tmp_path / "photos"
    write_jpeg(root / "a.jpg", seed=1)
    write_jpeg(root / "b.jpg", seed=2)
    scan(library, model, root)
    write_jpeg(root / "a.jpg", seed=3, size=(200, 300))
    os.utime(root / "a.jpg", ns=(1, 1))
    summary = scan(library, model, root)
    assert (summary.changed, summary.unchanged, summary.predicted) == (1, 1, 1)
    assert photos(library)["a.jpg"].width == 200

    newer = LandmarkModel.load(build_tiny_model(tmp_path / "v2.pt", version="0.0.2"), "cpu")
    summary = scan(library, newer, root)
    assert (summary.new_model, summary.predicted) == (2, 2)


def bomb_png(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims huge dimensions."""
    write_image(path, "PNG", size=(8, 8))
    data = bytearray(path.read_bytes())
    ihdr = bytearray(data[12:29])
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    path.write_bytes(bytes(data))
    return path


def test_bad_files_are_recorded_with_a_reason_and_the_scan_goes_on(library, model, tmp_path):
    root = tmp_path / "photos"
    write_jpeg(root / "good.jpg")
    good = (root / "good.jpg").read_bytes()
    (root / "zero.jpg").write_bytes(b"")
    (root / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (root / "text.jpg").write_text("this is not a photo")
    corrupt = bytearray(good)
    corrupt[200:1200] = os.urandom(1000)
    (root / "corrupt.jpg").write_bytes(bytes(corrupt))
    bomb_png(root / "bomb.png", 40000, 40000)
    bomb_png(root / "huge.png", 30000, 9000)
    broken_exif = good[:2] + b"\xff\xe1\x00\x10Exif\x00\x00MM\x00*\xff\xff\xff" + good[2:]
    (root / "broken-exif.jpg").write_bytes(broken_exif)
    (root / "名前 ünïcödé.jpg").write_bytes(good)
    weird = os.fsencode(str(root)) + b"/latin1-\xe9t\xe9.jpg"
    with open(weird, "wb") as handle:
        handle.write(good[:-10] + b"\x00" * 10)
    summary = scan(library, model, root)
    reasons = {Path(f["path"]).name: f["reason"] for f in summary.failed}
    assert reasons["zero.jpg"] == "empty file"
    assert reasons["truncated.jpg"] == "truncated jpeg file"
    assert reasons["text.jpg"] == "not an image (unrecognised content)"
    assert "decompression bomb" in reasons["bomb.png"]
    assert reasons["huge.png"].startswith("image too large") or "bomb" in reasons["huge.png"]
    assert "good.jpg" not in reasons and "名前 ünïcödé.jpg" not in reasons
    assert "broken-exif.jpg" not in reasons  # broken EXIF: still a photo, EXIF left alone
    indexed = photos(library)
    for name, reason in reasons.items():
        assert (indexed[name].status, indexed[name].error) == ("failed", reason)
    assert indexed["名前 ünïcödé.jpg"].tag_state == "auto"
    assert any(photo.path_bytes == weird for photo in indexed.values())
    assert summary.found == 10


def test_unreadable_and_vanishing_files(library, model, tmp_path, monkeypatch):
    root = tmp_path / "photos"
    write_jpeg(root / "fine.jpg")
    write_jpeg(root / "locked.jpg", seed=1)
    write_jpeg(root / "vanishing.jpg", seed=2)
    real_read = decode.read_file

    def read_file(path):
        name = Path(path).name
        if name == "locked.jpg":  # root reads anything, so permissions are simulated here
            raise decode.ImageError("cannot read: Permission denied")
        if name == "vanishing.jpg":
            os.unlink(path)
        return real_read(path)

    monkeypatch.setattr(decode, "read_file", read_file)
    summary = scan(library, model, root)
    reasons = {Path(f["path"]).name: f["reason"] for f in summary.failed}
    assert reasons == {"locked.jpg": "cannot read: Permission denied",
                       "vanishing.jpg": "no such file"}
    assert photos(library)["fine.jpg"].status == "ok"


def test_orientation_is_applied_before_classifying(model, tmp_path):
    upright = write_jpeg(tmp_path / "upright.jpg", size=(240, 320))
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": the pixels are stored turned left
    Image.open(upright).rotate(90, expand=True).save(rotated, "JPEG", quality=95, exif=exif)
    from phototagger.imaging import load_input

    a, facts_a = load_input(upright, model.preprocess)
    b, facts_b = load_input(rotated, model.preprocess)
    assert (facts_b.width, facts_b.height) == (240, 320)
    assert (a - b).abs().mean() < 0.05


def test_person_tags_survive_scans_and_untag_stays_untagged(library, model, tmp_path):
    from phototagger.corrections import confirm_landmark, remove_landmark

    root = tmp_path / "photos"
    write_jpeg(root / "mine.jpg", seed=1)
    write_jpeg(root / "wrong.jpg", seed=2)
    scan(library, model, root)
    [outcome] = confirm_landmark(library, [str(root / "mine.jpg")], "hagia")
    assert outcome.ok, outcome.message
    [outcome] = remove_landmark(library, [str(root / "wrong.jpg")])
    assert outcome.ok, outcome.message
    assert tags.read_tags(root / "wrong.jpg") is None
    summary = scan(library, model, root, force=True)
    assert summary.kept_by_person == 2
    indexed = photos(library)
    assert (indexed["mine.jpg"].landmark_slug, indexed["mine.jpg"].tag_state) == (
        "hagia-sophia", "confirmed")
    assert tags.read_tags(root / "mine.jpg").source == "person"
    assert indexed["wrong.jpg"].landmark_slug is None
    assert tags.read_tags(root / "wrong.jpg") is None


def test_dry_run_changes_no_file_and_no_index_row(library, model, tmp_path):
    root = tmp_path / "photos"
    write_jpeg(root / "a.jpg")
    before = (root / "a.jpg").read_bytes()
    summary = scan(library, model, root, dry_run=True)
    assert summary.tagged == 1
    assert (root / "a.jpg").read_bytes() == before
    assert list(root.iterdir()) == [root / "a.jpg"]
    assert photos(library) == {}


def test_write_none_and_sidecar_leave_originals_untouched(library, model, tmp_path):
    root = tmp_path / "photos"
    write_jpeg(root / "a.jpg")
    before = (root / "a.jpg").read_bytes()
    scan(library, model, root, write="none")
    assert (root / "a.jpg").read_bytes() == before and photos(library)["a.jpg"].landmark_slug
    scan(library, model, root, write="sidecar", force=True)
    assert (root / "a.jpg").read_bytes() == before
    assert tags.read_tags(root / "a.jpg").where == root / "a.jpg.xmp"


def test_threshold_keeps_doubtful_photos_untagged(library, model, tmp_path):
    root = tmp_path / "photos"
    write_jpeg(root / "a.jpg")
    before = (root / "a.jpg").read_bytes()
    summary = scan(library, model, root, threshold=0.99)
    assert (summary.tagged, summary.below_threshold) == (0, 1)
    assert (root / "a.jpg").read_bytes() == before
    assert photos(library)["a.jpg"].landmark_slug is None


def test_new_tag_settings_reach_unchanged_photos_without_force(library, model, tmp_path):
    from phototagger.corrections import confirm_landmark

    root = tmp_path / "photos"
    for seed in range(3):
        write_jpeg(root / f"{seed}.jpg", seed=seed)
    mine = write_jpeg(root / "mine.jpg", seed=7)
    scan(library, model, root, threshold=0.99)  # nothing clears it
    [outcome] = confirm_landmark(library, [str(mine)], "hagia")
    assert outcome.ok, outcome.message
    # A lower threshold tags what now clears it; a person's decision stays as it is.
    summary = scan(library, model, root, threshold=0.0, write="none")
    assert (summary.new_settings, summary.unchanged, summary.tagged) == (3, 1, 3)
    assert all(tags.read_tags(root / f"{seed}.jpg") is None for seed in range(3))
    # A scan that writes, after one that did not, writes.
    summary = scan(library, model, root, threshold=0.0)
    assert (summary.new_settings, summary.tagged) == (3, 3)
    assert all(tags.read_tags(root / f"{seed}.jpg").landmark for seed in range(3))
    assert scan(library, model, root, threshold=0.0).unchanged == 4  # and then it is settled
    # A higher threshold takes phototagger's automatic tags back, the person's stays.
    summary = scan(library, model, root, threshold=0.99)
    assert (summary.new_settings, summary.below_threshold) == (3, 3)
    assert all(tags.read_tags(root / f"{seed}.jpg") is None for seed in range(3))
    assert tags.read_tags(mine).slug == "hagia-sophia"
    assert photos(library)["0.jpg"].landmark_slug is None
    # Taken back from the index alone (--write none), then from the file by a writing scan;
    # a dry run says so first.
    scan(library, model, root, threshold=0.0)
    scan(library, model, root, threshold=0.99, write="none")
    assert all(tags.read_tags(root / f"{seed}.jpg") for seed in range(3))
    dry = scan(library, model, root, threshold=0.99, dry_run=True)
    assert (dry.new_settings, dry.untagged) == (3, 3)  # what the real run then does
    summary = scan(library, model, root, threshold=0.99)
    assert (summary.new_settings, summary.untagged) == (3, 3)
    assert all(tags.read_tags(root / f"{seed}.jpg") is None for seed in range(3))
    assert scan(library, model, root, threshold=0.99).unchanged == 4


def test_force_predicts_again_but_leaves_a_file_that_says_the_same_alone(
    library, model, tmp_path
):
    root = tmp_path / "photos"
    write_jpeg(root / "a.jpg")
    scan(library, model, root, threshold=0.0)
    tagged = (root / "a.jpg").read_bytes()
    summary = scan(library, model, root, threshold=0.0, force=True)
    assert (summary.forced, summary.changed, summary.predicted, summary.tagged) == (1, 0, 1, 1)
    assert (root / "a.jpg").read_bytes() == tagged  # no new TaggedAt, no new mtime
    # --force is how tags lost outside phototagger come back: it reads the file, not the index.
    other = write_jpeg(root / "b.jpg", seed=3)
    scan(library, model, root, threshold=0.0, write="sidecar")
    (root / "b.jpg.xmp").unlink()  # deleted by hand: b.jpg itself is unchanged
    scan(library, model, root, threshold=0.0, write="sidecar", force=True)
    assert tags.read_tags(other).where == root / "b.jpg.xmp"
    assert (root / "a.jpg").read_bytes() == tagged and not (root / "a.jpg.xmp").exists()


@both_backends
def test_a_second_scan_of_the_same_index_is_refused_clearly(library, model, tmp_path):
    root = tmp_path / "photos"
    write_jpeg(root / "a.jpg")
    with library.lock():
        with pytest.raises(IndexLockedError):
            scan(library, model, root)


def test_decoding_in_worker_processes(library, model, tmp_path):
    root = tmp_path / "photos"
    for seed in range(6):
        write_jpeg(root / f"{seed}.jpg", seed=seed)
    (root / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
    summary = scan(library, model, root, workers=2, batch_size=4)
    assert (summary.predicted, len(summary.failed)) == (6, 1)
    shutil.rmtree(root)


def test_a_failed_tag_write_is_reported_and_retried_next_scan(library, model, tmp_path):
    root = tmp_path / "photos"
    write_image(root / "w.webp", "WEBP")
    (root / "w.webp.xmp").write_text("<not xmp")  # a sidecar that cannot be merged into
    summary = scan(library, model, root)
    assert summary.tagged == 0
    [failure] = summary.failed
    sidecar = f"{root / 'w.webp.xmp'}: existing sidecar is not valid XMP; left as it is"
    assert failure["reason"] == f"tags not written: {sidecar}"  # which file, named once
    assert photos(library)["w.webp"].write_error
    # An index-only scan has nothing to retry: it neither decodes the photo again nor forgets
    # the failure (once, every such scan decoded it again, forever).
    summary = scan(library, model, root, write="none")
    assert (summary.retried, summary.unchanged, summary.predicted) == (0, 1, 0)
    assert photos(library)["w.webp"].write_error
    (root / "w.webp.xmp").unlink()
    summary = scan(library, model, root)
    assert (summary.tagged, summary.failed) == (1, [])
    assert (summary.found, summary.retried, summary.unchanged) == (1, 1, 0)
    assert photos(library)["w.webp"].write_error is None
    assert tags.read_tags(root / "w.webp") is not None


def test_excluded_files_are_not_missing_and_returning_files_need_no_decode(
    library, model, tmp_path, monkeypatch
):
    root = tmp_path / "photos"
    write_jpeg(root / "keep" / "a.jpg")
    write_jpeg(root / "skip" / "b.jpg", seed=1)
    scan(library, model, root)
    summary = scan(library, model, root, excludes=("skip",))
    assert (summary.missing, summary.unchanged) == (0, 1)
    assert photos(library)["b.jpg"].status == "ok"

    (root / "keep" / "a.jpg").rename(tmp_path / "a.jpg")  # the disk goes away for a night
    assert scan(library, model, root).missing == 1
    (tmp_path / "a.jpg").rename(root / "keep" / "a.jpg")
    monkeypatch.setattr(decode, "prepare", lambda *a: pytest.fail("decoded again"))
    summary = scan(library, model, root)
    assert (summary.unchanged, summary.predicted) == (2, 0)
    assert photos(library)["a.jpg"].status == "ok"


def test_a_new_model_does_not_rewrite_files_that_already_say_the_same(library, model, tmp_path):
    root = tmp_path / "photos"
    write_jpeg(root / "a.jpg")
    scan(library, model, root)
    before = (root / "a.jpg").read_bytes()
    newer = LandmarkModel.load(build_tiny_model(tmp_path / "v2.pt", version="0.0.2"), "cpu")
    summary = scan(library, newer, root)
    assert (summary.new_model, summary.tagged) == (1, 1)
    assert (root / "a.jpg").read_bytes() == before


@needs_forked_workers
def test_a_decoder_that_kills_its_worker_costs_only_its_file(library, model, tmp_path,
                                                             monkeypatch):
    root = tmp_path / "photos"
    for seed in range(7):
        write_jpeg(root / f"{seed}.jpg", seed=seed)
    real_prepare = decode.prepare

    def crashing_prepare(data, spec):
        if data == (root / "3.jpg").read_bytes():
            os._exit(9)  # as a native decoder crash would: the worker process dies
        return real_prepare(data, spec)

    monkeypatch.setattr(decode, "prepare", crashing_prepare)
    summary = scan(library, model, root, workers=2, batch_size=2)
    assert [(Path(f["path"]).name, f["reason"]) for f in summary.failed] == [
        ("3.jpg", "the decoder crashed on this file")]
    assert summary.predicted == 6


def test_a_landmark_too_far_from_the_camera_is_not_tagged(library, model, tmp_path):
    """The camera's own GPS vetoes a landmark it could not have seen: on real photos with GPS
    the shipped model named landmarks thousands of km away, and a wrong tag is worse than none."""
    root = tmp_path / "photos"
    write_jpeg(root / "plain.jpg")
    scan(library, model, root)
    landmark = model.landmark(photos(library)["plain.jpg"].landmark_slug)
    here = (landmark.latitude, landmark.longitude)
    away = (-landmark.latitude, landmark.longitude - 179)  # the other side of the Earth
    write_jpeg(root / "near.jpg", exif=gps_exif(here[0] + 0.2, here[1] + 0.2))  # ~30 km
    far = write_jpeg(root / "far.jpg", exif=gps_exif(*away))
    write_jpeg(root / "no-fix.jpg", exif=gps_exif(0, 0))  # what a camera without a fix writes
    before = far.read_bytes()
    summary = scan(library, model, root)
    assert (summary.new, summary.tagged, summary.far_from_camera) == (3, 2, 1)
    assert far.read_bytes() == before and tags.read_tags(far) is None
    indexed = photos(library)
    assert indexed["far.jpg"].landmark_slug is None and indexed["far.jpg"].tag_state is None
    assert indexed["near.jpg"].landmark_slug == indexed["no-fix.jpg"].landmark_slug
    assert tags.read_tags(root / "near.jpg").slug == landmark.slug
    assert scan(library, model, root).unchanged == 4  # settled: not decoded again every night
    # A person knows better than the GPS rule: their tag stands.
    from phototagger.corrections import confirm_landmark

    [outcome] = confirm_landmark(library, [str(far)], landmark.slug)
    assert outcome.ok, outcome.message
    assert scan(library, model, root, force=True).kept_by_person == 1
    assert tags.read_tags(far).slug == landmark.slug


def test_phototaggers_own_gps_estimate_is_never_taken_for_the_cameras(library, model, tmp_path):
    root = tmp_path / "photos"
    write_jpeg(root / "no-gps.jpg")
    scan(library, model, root)
    assert tags.read_tags(root / "no-gps.jpg").gps_written  # an estimate went into the file
    scan(library, model, root, force=True)
    assert photos(library)["no-gps.jpg"].camera_latitude is None


def test_decoding_workers_and_network_threads_follow_the_cores(monkeypatch, library, model):
    scanner = local_engine(model)
    monkeypatch.setattr(local, "_cores", lambda: 16)
    assert scanner._decoding_workers() == 8  # a CPU: decoding and the network share the cores
    assert scanner._network_threads(default=16) == 8
    assert scanner._network_threads(default=4) == 4  # never more than torch would use
    monkeypatch.setattr(local, "_cores", lambda: 2)
    assert (scanner._decoding_workers(), scanner._network_threads(default=2)) == (2, 1)
    asked = local_engine(model, workers=0)
    assert (asked._decoding_workers(), asked._network_threads(default=2)) == (0, 2)


@needs_forked_workers
def test_the_network_takes_every_core_once_the_workers_are_through(
    monkeypatch, library, model, tmp_path
):
    import time

    import torch

    root = tmp_path / "photos"
    for index in range(6):
        write_jpeg(root / f"{index}.jpg", seed=index)
    real_prepare = decode.prepare

    def slow_last_file(data, spec):  # holds the last batch back in its worker
        if data == (root / "5.jpg").read_bytes():
            time.sleep(1.5)
        return real_prepare(data, spec)

    assert model.module is not None  # loaded (and checked on one input) before counting
    threads_seen = []
    real_scores = model.scores

    def scores(inputs, **options):
        threads_seen.append(torch.get_num_threads())
        return real_scores(inputs, **options)

    monkeypatch.setattr(decode, "prepare", slow_last_file)
    monkeypatch.setattr(model, "scores", scores)
    monkeypatch.setattr(local, "_cores", lambda: 2)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        summary = scan(library, model, root, workers=2, batch_size=2)
        assert torch.get_num_threads() == 2  # given back as found
    finally:
        torch.set_num_threads(threads)
    assert summary.predicted == 6
    # Two workers leave one core to the network; the last batch, with nothing left to
    # decode, gets both.
    assert threads_seen == [1, 1, 2]


def test_work_given_for_while_decoding_runs_once_the_workers_have_started(
    library, model, tmp_path
):
    import multiprocessing

    paths = [str(write_jpeg(tmp_path / f"{index}.jpg", seed=index)) for index in range(4)]
    events = []
    scanner = local_engine(model, workers=2, batch_size=2)
    batches = scanner._batches(
        paths, while_decoding=lambda: events.append(len(multiprocessing.active_children()))
    )
    for batch in batches:
        events.append(len(batch.items))
    assert events == [2, 2, 2]  # called once, with both workers running, before any batch


@needs_forked_workers
def test_decoding_workers_yield_the_cores_and_leave_ctrl_c_to_the_main_process(
    monkeypatch, model, tmp_path
):
    path = write_jpeg(tmp_path / "IMG_0.jpg", seed=0)
    # The worker is forked after this patch: it reports its niceness where GPS would go, and
    # whether it ignores SIGINT and SIGHUP (which a terminal sends to the whole group).
    monkeypatch.setattr(decode, "read_camera_gps", lambda *_: (
        float(os.nice(0)), float(signal.getsignal(signal.SIGINT) == signal.SIG_IGN
                                 == signal.getsignal(signal.SIGHUP))))
    loader = dataset.make_loader([str(path)], model.preprocess, batch_size=1, workers=1)
    (batch,) = list(loader)
    expected = min(19, os.nice(0) + decode.WORKER_NICENESS)
    assert batch.items[0].camera_gps == (float(expected), 1.0)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # here: untouched


@needs_forked_workers
def test_workers_that_cannot_share_their_batches_leave_decoding_to_this_process(
    library, model, tmp_path, monkeypatch, caplog
):
    """A container's small /dev/shm: once, the scan waited forever for a dropped batch."""
    root = tmp_path / "photos"
    for seed in range(5):
        write_jpeg(root / f"{seed}.jpg", seed=seed)

    def no_room(tensor):  # what torch raises when /dev/shm is full; workers inherit the patch
        raise RuntimeError("unable to write to file </torch_1_2_0>: No space left on device")

    monkeypatch.setattr(torch.Tensor, "share_memory_", no_room)
    with caplog.at_level(logging.WARNING, logger="phototagger.scan"):
        summary = scan(library, model, root, workers=2, batch_size=2, threshold=0.0)
    assert (summary.predicted, summary.tagged, summary.failed) == (5, 5, [])
    assert "No space left on device" in caplog.text and "--shm-size" in caplog.text
    assert not multiprocessing.active_children()  # the workers were stopped, not left behind


@needs_forked_workers
def test_a_file_decoded_apart_without_shared_memory_is_decoded_here(
    library, model, tmp_path, monkeypatch
):
    """Isolating a crashed worker's files, a worker that decoded its file but could not hand
    it over did not crash on it: the file is decoded in this process, not failed for good."""
    path = write_jpeg(tmp_path / "innocent.jpg")

    def no_room(tensor):
        raise RuntimeError("unable to write to file </torch_1_2_0>: No space left on device")

    monkeypatch.setattr(torch.Tensor, "share_memory_", no_room)
    batch = local_engine(model)._isolated(str(path), 7, pin=False)
    [item] = batch.items
    assert (item.index, item.error, tuple(batch.inputs.shape)) == (7, None, (1, 3, 64, 64))


def test_a_scan_asked_to_stop_keeps_what_it_did_and_the_next_goes_on(
    library, model, tmp_path, monkeypatch
):
    root = tmp_path / "photos"
    for seed in range(6):
        write_jpeg(root / f"{seed}.jpg", seed=seed)
    scanner = Scanner(library, model, ScanOptions(workers=0, batch_size=2, threshold=0.0))
    record_batch = Recorder.batch

    def stop_after_first_batch(self, *args):  # as the CLI's Ctrl-C or SIGTERM handler does
        scanner.request_stop()
        return record_batch(self, *args)

    monkeypatch.setattr(Recorder, "batch", stop_after_first_batch)
    summary = scanner.run([root])
    monkeypatch.undo()
    assert summary.interrupted and (summary.predicted, summary.tagged) == (2, 2)
    with library.session() as session:
        counts = [session.scalar(select(func.count()).select_from(table))
                  for table in (orm.Photo, orm.Write)]
    assert counts == [2, 2]
    # Every write the stopped scan made was recorded: nothing is "changed" and done twice.
    summary = scan(library, model, root, threshold=0.0)
    assert (summary.new, summary.changed, summary.unchanged, summary.tagged) == (4, 0, 2, 4)
    assert not summary.interrupted
    assert not list(root.glob(".*.tmp"))


def test_a_failure_names_its_file_once():
    summary = pipeline.ScanSummary()
    summary.fail("/p/a.jpg", "tags not written: /p/a.jpg: write failed, original untouched: "
                             "[Errno 28] No space left on device")
    summary.fail("/p/b.jpg", "tags not written: /p/b.jpg.xmp: cannot write sidecar")
    assert [f["reason"] for f in summary.failed] == [
        "tags not written: write failed, original untouched: [Errno 28] No space left on device",
        "tags not written: /p/b.jpg.xmp: cannot write sidecar",  # another file: named
    ]


def test_a_new_index_leaves_files_that_already_say_their_landmark_alone(model, tmp_path):
    """A lost index, a new machine, a trial --db: nothing is rewritten for a new time stamp."""
    root = tmp_path / "photos"
    write_jpeg(root / "a.jpg")
    write_image(root / "b.png", "PNG", seed=1)
    write_image(root / "c.webp", "WEBP", seed=2)  # tagged in a sidecar
    first = Library(f"sqlite:///{tmp_path / 'first.sqlite3'}")
    assert scan(first, model, root, threshold=0.0).tagged == 3
    files = sorted(p for p in root.iterdir())
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    again = Library(f"sqlite:///{tmp_path / 'again.sqlite3'}")
    summary = scan(again, model, root, threshold=0.0)
    assert (summary.new, summary.tagged, summary.failed) == (3, 3, [])
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == before
    assert scan(again, model, root, threshold=0.0).unchanged == 3  # and recorded as written


def test_a_new_index_takes_back_tags_an_earlier_scan_left_in_files_it_would_not_write(
    model, tmp_path
):
    """Tags written through another index (a trial --db at a low threshold, a lost index)
    under settings this scan does not share: the file must not keep what the index denies."""
    root = tmp_path / "photos"
    write_jpeg(root / "a.jpg")
    write_image(root / "c.webp", "WEBP", seed=2)  # tagged in a sidecar
    originals = {p: p.read_bytes() for p in root.iterdir()}
    trial = Library(f"sqlite:///{tmp_path / 'trial.sqlite3'}")
    assert scan(trial, model, root, threshold=0.0).tagged == 2
    again = Library(f"sqlite:///{tmp_path / 'again.sqlite3'}")
    summary = scan(again, model, root, threshold=1.0)  # nothing is that sure
    assert (summary.below_threshold, summary.untagged, summary.failed) == (2, 2, [])
    assert {p: p.read_bytes() for p in root.iterdir()} == originals  # sidecar gone too
    assert tags.read_tags(root / "a.jpg") is None
    assert scan(again, model, root, threshold=1.0).unchanged == 2  # settled, not redone


def test_an_index_only_scan_remembers_a_foreign_tag_for_the_next_writing_scan(model, tmp_path):
    """--write none leaves files alone, but the index must learn what they hold: a later
    writing scan of the same index takes back the tag the index would not write."""
    root = tmp_path / "photos"
    write_jpeg(root / "a.jpg")
    original = (root / "a.jpg").read_bytes()
    trial = Library(f"sqlite:///{tmp_path / 'trial.sqlite3'}")
    assert scan(trial, model, root, threshold=0.0).tagged == 1
    again = Library(f"sqlite:///{tmp_path / 'again.sqlite3'}")
    assert scan(again, model, root, threshold=1.0, write="none").untagged == 0
    assert tags.read_tags(root / "a.jpg") is not None  # an index-only scan touches no file
    summary = scan(again, model, root, threshold=1.0)
    assert (summary.new_settings, summary.untagged) == (1, 1)
    assert (root / "a.jpg").read_bytes() == original


@pytest.mark.parametrize("write", ["embed", "sidecar"])
def test_a_persons_tag_in_the_file_outlives_a_lost_index(model, tmp_path, write):
    """`tag` promises a person's decision is never overwritten by a scan: an index that never
    heard of it (lost, or another --db) must not overwrite it with the model's answer."""
    from phototagger.corrections import confirm_landmark

    root = tmp_path / "photos"
    photo = write_jpeg(root / "a.jpg")
    lost = Library(f"sqlite:///{tmp_path / 'lost.sqlite3'}")
    [outcome] = confirm_landmark(lost, [str(photo)], "dome of the rock", write,
                                 landmarks=model.classes)
    assert outcome.ok, outcome.message
    before = {p: p.read_bytes() for p in root.iterdir()}
    again = Library(f"sqlite:///{tmp_path / 'again.sqlite3'}")
    summary = scan(again, model, root, threshold=0.0, write=write)
    assert (summary.kept_by_person, summary.tagged) == (1, 0)  # the model says Taj Mahal
    assert {p: p.read_bytes() for p in root.iterdir()} == before
    row = photos(again)["a.jpg"]
    assert (row.tag_state, row.landmark_slug) == ("confirmed", "dome-of-the-rock")
    with again.session() as session:
        [written] = session.scalars(select(orm.Write)).all()
    assert (written.mode, written.slug) == (write, "dome-of-the-rock")  # what untag undoes
    assert scan(again, model, root, threshold=0.0, write=write).unchanged == 1
    moved = root / "elsewhere" / "a.jpg"  # and a sidecar follows its photo, as any of ours
    moved.parent.mkdir()
    photo.rename(moved)
    assert scan(again, model, root, threshold=0.0, write=write).moved == 1
    assert tags.read_tags(moved).slug == "dome-of-the-rock"


def test_a_featureless_image_is_never_tagged(library, model, tmp_path):
    """The shipped model named a solid colour Qutb Minar at 63-85 %: a wrong tag is worse than
    none, and an image with next to no detail holds no evidence of a landmark."""
    root = tmp_path / "photos"
    blank = root / "lens-cap.jpg"
    blank.parent.mkdir()
    Image.new("RGB", (320, 240), (12, 12, 14)).save(blank, quality=90)
    write_jpeg(root / "picture.jpg")
    before = blank.read_bytes()
    summary = scan(library, model, root, threshold=0.0)
    assert (summary.tagged, summary.featureless) == (1, 1)
    assert blank.read_bytes() == before and tags.read_tags(blank) is None
    assert photos(library)["lens-cap.jpg"].detail == 0.0
    assert scan(library, model, root, threshold=0.0).unchanged == 2  # settled


KILLED_MID_WRITE = """
import os, signal, sys
from pathlib import Path
from phototagger.tags.atomic import atomic_write
target = Path(sys.argv[1])
def verify(written):  # the temporary copy is written and fsynced: killed before the rename
    os.kill(os.getpid(), signal.SIGKILL)
atomic_write(target, target.read_bytes() + b"", verify)
"""


def test_a_scan_removes_the_temporary_copy_a_killed_write_left(library, model, tmp_path, caplog):
    root = tmp_path / "photos"
    photo = write_jpeg(root / "IMG_1.jpg")
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, str(photo)])
        assert done.returncode == -signal.SIGKILL
    old, recent = sorted(root.glob(".IMG_1.jpg.*.tmp"))
    os.utime(old, (time.time() - 2 * 3600,) * 2)  # left by last night's killed scan
    assert scan(library, model, root, dry_run=True).found == 1 and old.exists()
    assert scan(library, model, root, write="none").found == 1 and old.exists()
    with caplog.at_level(logging.WARNING, "phototagger.scan"):
        summary = scan(library, model, root)
    assert (summary.found, summary.failed) == (1, [])
    assert not old.exists() and recent.exists()  # a write may still be using a recent one
    assert f"removed {old}: a temporary copy left by a scan that was killed" in caplog.text


def test_an_index_only_scan_counts_the_tags_it_takes_out_of_the_index(model, tmp_path):
    """A raised threshold with --write none takes the index's tags back: the summary says so
    (it said 'untagged 0'); the files keep theirs until a scan writes."""
    root = tmp_path / "photos"
    write_jpeg(root / "a.jpg")
    library = Library(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    assert scan(library, model, root, threshold=0.0).tagged == 1
    assert scan(library, model, root, threshold=1.0, write="none").untagged == 1
    assert tags.read_tags(root / "a.jpg") is not None
