"""Replace a file so that a crash at any instant leaves either the old or the new one."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from phototagger.hashing import content_hash

#: What a temporary file is called: ``.NAME.XXXXXXXX.tmp`` beside the file NAME it replaces
#: (tempfile.mkstemp's eight random characters), hidden from file browsers.
_TEMP_NAME = re.compile(r"\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp")


def temp_target(name: str) -> str | None:
    """The name of the file a temporary file called ``name`` was to replace, or None when
    ``name`` is not one of atomic_write's temporary files."""
    found = _TEMP_NAME.fullmatch(name)
    return found["target"] if found else None


class OwnerError(PermissionError):
    """The replacement could not be given the original's owner: writing it would change owner."""


class ChangedMeanwhile(OSError):
    """Another program changed the file after it was read: replacing it would lose that."""


def ensure_unchanged(path: Path, read_as: os.stat_result) -> None:
    """Raise ChangedMeanwhile unless ``path`` still has the device, inode, size and mtime it had
    when ``read_as`` was taken (before its content was read)."""

    def identity(info: os.stat_result) -> tuple[int, int, int, int]:
        return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns

    if identity(os.stat(path)) != identity(read_as):
        raise ChangedMeanwhile(errno.EAGAIN, "changed by another program meanwhile")


@dataclass(frozen=True)
class Replaced:
    """The new file as it was renamed into place: what an index remembers without re-reading."""

    size: int
    mtime_ns: int
    content_hash: str


#: A file's new content: one buffer, or several written one after the other (no joined copy).
Chunks = bytes | Sequence[bytes | memoryview]


def atomic_write(
    target: Path,
    data: Chunks,
    verify: Callable[[bytes], None],
    like: Path | None = None,
    preserve_mtime: bool = False,
    keep_owner: bool = True,
    read_as: os.stat_result | None = None,
    new_file: bool = False,
) -> Replaced:
    """Write a temp file beside target, fsync, re-read and verify it, then rename over target.

    A symlink is followed: its target is replaced and the link stays a link. ``like`` is the
    file whose owner, extended attributes, permissions (and, with preserve_mtime, times) the
    result keeps; an owner that cannot be kept raises OwnerError unless keep_owner is False
    (best effort). ``read_as``: target's stat taken before its content was read; if another
    program has changed it since (a sync, an editor), ChangedMeanwhile is raised instead of
    losing that change; ``new_file``: target did not exist, and one another program has made
    meanwhile is not replaced either. Any failure removes the temp file and leaves target as
    it was. Returns the size, mtime and content hash (phototagger.hashing) of what was
    verified and put in place.
    """
    target = Path(os.path.realpath(target))
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.writelines([data] if isinstance(data, bytes) else data)
            handle.flush()
            os.fsync(handle.fileno())
        written = temp.read_bytes()
        verify(written)
        if like is not None:
            before = like.stat()
            _keep_owner(temp, before, keep_owner)
            _copy_xattrs(like, temp)
            os.chmod(temp, stat.S_IMODE(before.st_mode))  # after chown, which drops setuid bits
            if preserve_mtime:
                os.utime(temp, ns=(before.st_atime_ns, before.st_mtime_ns))
        else:
            os.chmod(temp, 0o666 & ~_umask())
        info = os.stat(temp)
        if read_as is not None:
            ensure_unchanged(target, read_as)
        if new_file:
            _create(temp, target)
        else:
            os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    fsync_dir(target.parent)
    return Replaced(info.st_size, info.st_mtime_ns, content_hash(written))


def _create(temp: Path, target: Path) -> None:
    """Put temp in place as target, which must not exist: a hard link fails if it does."""
    try:
        os.link(temp, target)
    except FileExistsError:
        raise ChangedMeanwhile(errno.EEXIST, "created by another program meanwhile") from None
    except OSError:  # no hard links here (FAT, some network shares): looked for, then renamed
        if os.path.lexists(target):
            raise ChangedMeanwhile(errno.EEXIST, "created by another program meanwhile") from None
        os.replace(temp, target)
        return
    os.unlink(temp)


def _keep_owner(temp: Path, before: os.stat_result, strict: bool) -> None:
    now = temp.stat()
    if (now.st_uid, now.st_gid) == (before.st_uid, before.st_gid):
        return
    try:
        os.chown(temp, before.st_uid, before.st_gid)
    except OSError:
        if strict:
            raise OwnerError(
                errno.EPERM, f"the owner {before.st_uid}:{before.st_gid} could not be kept"
            ) from None


def _copy_xattrs(source: Path, temp: Path) -> None:
    """Best effort: ACLs, Finder tags, SELinux labels; not every OS or file system has them."""
    if not hasattr(os, "listxattr"):
        return
    try:
        names = os.listxattr(source)
    except OSError:
        return
    for name in names:
        with contextlib.suppress(OSError):
            os.setxattr(temp, name, os.getxattr(source, name))


def fsync_dir(folder: Path) -> None:
    """Make a rename or unlink durable (a no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
