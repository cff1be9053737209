"""Replace a file so that a crash at any instant leaves either the old or the new one."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(
    target: Path,
    data: bytes,
    verify: Callable[[bytes], None],
    like: Path | None = None,
    preserve_mtime: bool = False,
) -> None:
    """Write a temp file beside target, fsync, re-read and verify it, then rename over target.

    ``like`` is the file whose permissions (and, with preserve_mtime, times) the result keeps.
    Any failure removes the temp file and leaves target as it was.
    """
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        verify(temp.read_bytes())
        if like is not None:
            before = like.stat()
            os.chmod(temp, stat.S_IMODE(before.st_mode))
            if preserve_mtime:
                os.utime(temp, ns=(before.st_atime_ns, before.st_mtime_ns))
        else:
            os.chmod(temp, 0o666 & ~_umask())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    fsync_dir(target.parent)


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
