"""A write keeps what makes the file the same file: links, owner, extended attributes."""

from __future__ import annotations

import os

import pytest

from phototagger.tags import atomic as atomic_mod
from phototagger.tags import read_tags, remove_tags, write_tags


def test_symlink_target_is_tagged_and_link_stays(photo, make_request, tmp_path):
    """Regression: os.replace put a regular file where the symlink was."""
    real = photo("Canon_40D.jpg")
    (tmp_path / "album").mkdir()
    link = tmp_path / "album" / "linked.jpg"
    link.symlink_to(real)
    result = write_tags(link, make_request())
    assert result.mode == "embed" and result.target == link
    assert link.is_symlink() and link.resolve() == real
    assert read_tags(real).slug == "eiffel-tower"
    assert remove_tags(link).removed and link.is_symlink() and read_tags(real) is None


def test_hard_linked_file_gets_a_sidecar(photo, make_request, tmp_path):
    """Regression: replacing one name of a hard-linked file split it from the others."""
    path = photo("Canon_40D.jpg")
    other = tmp_path / "other.jpg"
    os.link(path, other)
    original = path.read_bytes()
    result = write_tags(path, make_request())
    assert result.mode == "sidecar" and "hard-linked" in result.reason
    assert path.read_bytes() == original and os.path.samefile(path, other)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_owner_is_kept(photo, make_request):
    """Regression: the file written as root became root's."""
    path = photo("Canon_40D.jpg")
    os.chown(path, 65534, 65534)
    assert write_tags(path, make_request()).mode == "embed"
    assert (path.stat().st_uid, path.stat().st_gid) == (65534, 65534)
    remove_tags(path)
    assert (path.stat().st_uid, path.stat().st_gid) == (65534, 65534)


def test_owner_that_cannot_be_kept_means_a_sidecar(photo, make_request, monkeypatch):
    path = photo("Canon_40D.jpg")
    original = path.read_bytes()
    real_stat = atomic_mod.Path.stat

    def other_owner(self, *args, **kwargs):  # the photo seems to belong to someone else
        st = real_stat(self, *args, **kwargs)
        if self == path:
            return os.stat_result((st[0], st[1], st[2], st[3], 4242, 4242, *st[6:]))
        return st

    def denied(*args):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(atomic_mod.Path, "stat", other_owner)
    monkeypatch.setattr(atomic_mod.os, "chown", denied)
    result = write_tags(path, make_request())
    assert result.mode == "sidecar" and "owner" in result.reason
    assert path.read_bytes() == original
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, path.name + ".xmp"]


def test_extended_attributes_are_kept(photo, make_request):
    path = photo("Canon_40D.jpg")
    try:
        os.setxattr(path, "user.phototagger.test", b"keep me")
    except OSError:
        pytest.skip("this file system has no user extended attributes")
    write_tags(path, make_request())
    assert os.getxattr(path, "user.phototagger.test") == b"keep me"
