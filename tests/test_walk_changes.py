import hashlib
import os
import time
from pathlib import Path

from images import write_image, write_jpeg
from phototagger.hashing import content_hash, file_hash
from phototagger.index import KnownPhoto
from phototagger.scan.changes import plan_changes
from phototagger.scan.walk import AbandonedTemp, FoundFile, OutsideLink, WalkProblem, walk


def found_paths(root: Path, **kwargs) -> list[str]:
    return [item.path for item in walk([root], **kwargs) if isinstance(item, FoundFile)]


def test_walk_skips_hidden_and_excluded_and_reports_loops(tmp_path):
    write_jpeg(tmp_path / "a.jpg")
    write_jpeg(tmp_path / "sub" / "b.jpg", seed=1)
    write_jpeg(tmp_path / ".hidden" / "c.jpg", seed=2)
    write_jpeg(tmp_path / "tmp-cache" / "d.jpg", seed=3)
    write_jpeg(tmp_path / "lost+found" / "#1234.jpg", seed=4)  # fsck's, not the user's
    write_jpeg(tmp_path / "$RECYCLE.BIN" / "deleted.jpg", seed=5)
    (tmp_path / "a.jpg.xmp").write_text("<x/>")
    os.symlink(tmp_path, tmp_path / "sub" / "loop")
    os.symlink(tmp_path / "a.jpg", tmp_path / "sub" / "same-photo.jpg")
    os.symlink(tmp_path / "sub", tmp_path / "via-link")  # a second way in: no loop
    items = list(walk([tmp_path], excludes=["tmp-*"]))
    names = sorted(os.path.relpath(i.path, tmp_path) for i in items if isinstance(i, FoundFile))
    assert names == ["a.jpg", "sub/b.jpg"]
    problems = [(os.path.relpath(i.path, tmp_path), i.reason) for i in items
                if isinstance(i, WalkProblem)]
    assert problems == [
        ("sub/loop", f"symbolic link loop: leads back to {tmp_path}, not followed")
    ]


def test_links_out_of_the_library_are_reported_and_followed_only_when_asked(tmp_path):
    root, other = tmp_path / "Pictures", tmp_path / "other"
    write_jpeg(root / "a.jpg")
    write_jpeg(other / "b.jpg", seed=1)
    write_jpeg(tmp_path / "Pictures-old" / "c.jpg", seed=2)  # a name that starts like the root's
    write_jpeg(tmp_path / "scanned-before" / "d.jpg", seed=3)
    os.symlink(other, root / "to-other")
    os.symlink(other / "b.jpg", root / "b.jpg")
    os.symlink(tmp_path / "Pictures-old", root / "old")
    os.symlink(tmp_path / "scanned-before", root / "before")
    os.symlink(tmp_path / "nowhere", root / "broken.jpg")
    library = [str(tmp_path / "scanned-before")]  # a folder the index holds already
    items = list(walk([root], library=library))
    found = sorted(os.path.relpath(i.path, root) for i in items if isinstance(i, FoundFile))
    assert found == ["a.jpg", "before/d.jpg"]
    outside = [(os.path.relpath(i.path, root), i.target, i.followed) for i in items
               if isinstance(i, OutsideLink)]
    assert outside == [("b.jpg", str(other / "b.jpg"), False),
                       ("old", str(tmp_path / "Pictures-old"), False),
                       ("to-other", str(other), False)]
    assert [i.reason for i in items if isinstance(i, WalkProblem)] == ["broken symbolic link"]
    followed = list(walk([root], library=library, follow_links=True))
    assert sorted(os.path.relpath(i.path, root) for i in followed
                  if isinstance(i, FoundFile)) == ["a.jpg", "b.jpg", "before/d.jpg", "old/c.jpg"]
    assert all(i.followed for i in followed if isinstance(i, OutsideLink))


def test_walk_names_only_old_temporary_copies_of_photos_and_sidecars(tmp_path):
    write_jpeg(tmp_path / "a.jpg")
    hour_ago = time.time() - 3700
    names = [".a.jpg.k2x_9q0z.tmp", ".a.jpg.xmp.abcdefgh.tmp", ".a.jpg.recent12.tmp",
             ".notes.txt.abcdefgh.tmp", ".a.jpg.toolong99.tmp.bak", ".DS_Store"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
        if name != ".a.jpg.recent12.tmp":
            os.utime(tmp_path / name, (hour_ago, hour_ago))
    abandoned = [Path(i.path).name for i in walk([tmp_path]) if isinstance(i, AbandonedTemp)]
    assert abandoned == [".a.jpg.k2x_9q0z.tmp", ".a.jpg.xmp.abcdefgh.tmp"]


def test_excludes_match_paths_from_the_scanned_folder(tmp_path):
    for name in ("keep/a.jpg", "trips/2019/b.jpg", "trips/2020/c.jpg", "drafts/d.jpg"):
        write_jpeg(tmp_path / "Pictures" / name)
    write_jpeg(tmp_path / "Pictures" / "day-trips" / "IMG_1.jpg")
    paths = found_paths(tmp_path / "Pictures", excludes=["trips/2019", "drafts/*", "d*.jpg"])
    names = sorted(os.path.relpath(p, tmp_path / "Pictures") for p in paths)
    assert names == ["day-trips/IMG_1.jpg", "keep/a.jpg", "trips/2020/c.jpg"]


def test_walk_reports_unreadable_folder_and_broken_link(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    os.symlink(tmp_path / "nowhere.jpg", tmp_path / "broken.jpg")
    os.chmod(locked, 0)
    try:
        items = list(walk([tmp_path]))
    finally:
        os.chmod(locked, 0o755)
    reasons = {Path(i.path).name: i.reason for i in items if isinstance(i, WalkProblem)}
    assert reasons["broken.jpg"] == "broken symbolic link"
    if os.geteuid() != 0:  # root reads any folder
        assert "cannot list folder" in reasons["locked"]


def known(path: Path, photo_id: int, predicted=True, status="ok", algorithm="xxh3") -> KnownPhoto:
    info = path.stat()
    return KnownPhoto(photo_id, info.st_size, info.st_mtime_ns, file_hash(str(path), algorithm),
                      status, predicted)


def test_plan_sorts_new_changed_unchanged_new_model_and_failed(tmp_path):
    same = write_jpeg(tmp_path / "same.jpg")
    edited = write_jpeg(tmp_path / "edited.jpg", seed=1)
    older_model = write_jpeg(tmp_path / "older-model.jpg", seed=2)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    index = {
        str(same): known(same, 1),
        str(edited): known(edited, 2),
        str(older_model): known(older_model, 3, predicted=False),
        str(broken): known(broken, 4, status="failed"),
    }
    write_jpeg(edited, seed=9, size=(300, 200))
    write_jpeg(tmp_path / "fresh.jpg", seed=3)
    (tmp_path / "notes.md").write_text("not a photo, not reported")
    write_image(tmp_path / "no-extension", "PNG", seed=4)
    plan = plan_changes(walk([tmp_path]), index)
    reasons = {Path(w.path).name: w.reason for w in plan.work}
    assert reasons == {"edited.jpg": "changed", "older-model.jpg": "new-model",
                       "fresh.jpg": "new", "no-extension": "new"}
    assert plan.unchanged == 1
    assert plan.skipped == [(str(broken), "failed before and unchanged since")]
    assert plan.found == 6
    forced = plan_changes(walk([tmp_path]), index, force=True)
    assert (forced.count("forced"), forced.count("changed")) == (3, 1)  # an edit stays one


def test_plan_recognises_a_moved_file_by_content(tmp_path):
    photo = write_jpeg(tmp_path / "old" / "IMG_1.jpg")
    other = write_jpeg(tmp_path / "old" / "IMG_2.jpg", seed=5)
    index = {str(photo): known(photo, 7), str(other): known(other, 8)}
    target = tmp_path / "renamed" / "holiday.jpg"
    target.parent.mkdir()
    photo.rename(target)
    other.unlink()
    plan = plan_changes(walk([tmp_path]), index)
    assert [(m.photo_id, m.found.path) for m in plan.moves] == [(7, str(target))]
    assert plan.work == []
    assert plan.missing == {8}


def test_a_move_is_recognised_against_an_older_index_that_holds_sha256(tmp_path):
    photo = write_jpeg(tmp_path / "old" / "IMG_1.jpg")
    index = {str(photo): known(photo, 7, algorithm="sha256")}
    assert index[str(photo)].content_hash == hashlib.sha256(photo.read_bytes()).hexdigest()
    target = tmp_path / "IMG_1 moved.jpg"
    photo.rename(target)
    plan = plan_changes(walk([tmp_path]), index)
    assert [(m.photo_id, m.found.path) for m in plan.moves] == [(7, str(target))]


def test_a_new_file_of_the_same_size_is_no_move(tmp_path):
    photo = write_jpeg(tmp_path / "IMG_1.jpg")
    index = {str(photo): known(photo, 7)}
    data = bytearray(photo.read_bytes())
    data[-3] ^= 0xFF  # same size, other content
    photo.unlink()
    (tmp_path / "IMG_2.jpg").write_bytes(bytes(data))
    plan = plan_changes(walk([tmp_path]), index)
    assert plan.moves == [] and plan.missing == {7}
    assert [Path(w.path).name for w in plan.work] == ["IMG_2.jpg"]


def test_content_hash_of_pieces_is_the_hash_of_the_file(tmp_path):
    photo = write_jpeg(tmp_path / "IMG_1.jpg")
    data = photo.read_bytes()
    whole = content_hash(data)
    assert whole == file_hash(str(photo)) == content_hash([data[:10], memoryview(data)[10:]])
    assert whole.startswith("xxh3:") and whole != content_hash(data[:-1])


def test_a_failed_write_is_retried_only_once_its_folder_takes_files_again(tmp_path, monkeypatch):
    """A read-only mount (a NAS share) fails every write: retried each night, every photo
    would be decoded again and reported again, for nothing."""
    from dataclasses import replace

    from phototagger.scan import changes

    photo = write_jpeg(tmp_path / "IMG_1.jpg")
    index = {str(photo): replace(known(photo, 1), write_pending=True)}
    read_only = {str(tmp_path)}
    real_access = os.access
    monkeypatch.setattr(changes.os, "access",
                        lambda path, mode: path not in read_only and real_access(path, mode))
    plan = plan_changes(walk([tmp_path]), index, writing=True)
    assert (plan.work, plan.skipped) == (
        [], [(str(photo), "tags not written before, folder still read-only")])
    read_only.clear()  # remounted read-write
    [work] = plan_changes(walk([tmp_path]), index, writing=True).work
    assert work.reason == "retry-write"
