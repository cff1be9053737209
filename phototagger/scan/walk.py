"""Find the files to scan: recursive, hidden and system folders skipped, loops reported.

The walk only stats; what a file *is* gets decided from its content later, and only for files
the index does not already know unchanged, so a rescan of an unchanged library opens no file.
A library is the files whose real path lies inside its folders: a symbolic link that leads out
of them is reported (``OutsideLink``) and followed only when asked, so a scan never writes
where the app would refuse to.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from phototagger.index.store import is_inside
from phototagger.tags.atomic import temp_target

#: Extensions that promise an image: such a file with other content is reported, not ignored.
IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .jfif .png .webp .tif .tiff .heic .heif .hif".split()
)
#: Files that are never photos (phototagger's own sidecars among them): not even opened.
IGNORED_EXTENSIONS = frozenset(".xmp .json .txt .db .sqlite3 .lock .tmp".split())
#: Folders a file system or another OS keeps at a drive's top, skipped like hidden ones: never
#: a user's photos (a recycle bin holds deleted ones), and often unreadable, which would fail
#: every nightly scan of a drive for good.
SYSTEM_FOLDERS = frozenset({"lost+found", "$RECYCLE.BIN", "System Volume Information"})


@dataclass(frozen=True)
class FoundFile:
    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class AbandonedTemp:
    """A temporary copy a write of phototagger's left behind when its process was killed
    (kill -9, the out-of-memory killer, a power cut): safe to delete, the photo is whole."""

    path: str


#: A temporary file this old is no write in progress (one takes well under a second).
ABANDONED_AFTER_S = 3600


@dataclass(frozen=True)
class OutsideLink:
    """A symbolic link (to a folder or a file) whose target's real path lies outside the
    library's folders; ``followed`` when the walk was told to follow such links."""

    path: str
    target: str
    followed: bool


@dataclass(frozen=True)
class WalkProblem:
    """A file or folder the walk could not look into, with a one-line reason."""

    path: str
    reason: str


def has_image_extension(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


Found = FoundFile | WalkProblem | AbandonedTemp | OutsideLink


def walk(
    roots: Iterable[Path],
    excludes: Iterable[str] = (),
    *,
    library: Iterable[str] = (),
    follow_links: bool = False,
) -> Iterator[Found]:
    """Every regular file under ``roots`` once, in a stable order.

    ``excludes`` are glob patterns matched against each file or folder name, its path from the
    scanned folder (``trips/2019``, ``drafts/*``) and its absolute path. Symbolic links are
    followed, but a folder or file already visited is not again, and a link whose target lies
    outside ``roots`` and the ``library``'s other folders only with ``follow_links``.
    """
    roots = [Path(root).absolute() for root in roots]
    folders = frozenset({*library, *(os.path.realpath(root) for root in roots)})
    walker = _Walk(tuple(excludes), folders, follow_links)
    for root in roots:
        if root.is_file():
            yield from walker.file(os.fspath(root))
        else:
            yield from walker.folder(os.fspath(root), os.fspath(root), {})


def _excluded(path: str, root: str, patterns: tuple[str, ...]) -> bool:
    name, relative = os.path.basename(path), os.path.relpath(path, root)
    return any(
        fnmatch.fnmatch(name, p)
        or fnmatch.fnmatch(path, p)
        # Only a pattern with a slash is a path: fnmatch's * also matches '/', so 'd*.jpg'
        # would otherwise skip everything under a folder whose name starts with d.
        or ("/" in p and fnmatch.fnmatch(relative, p))
        for p in patterns
    )


def _abandoned(entry: os.DirEntry) -> bool:
    """Whether ``entry`` is a temporary file of phototagger's for a photo or sidecar, left
    long enough ago that no write can still be using it."""
    target = temp_target(entry.name)
    if target is None:
        return False
    extension = os.path.splitext(target)[1].lower()
    if extension not in IMAGE_EXTENSIONS and extension != ".xmp":
        return False
    try:
        info = entry.stat(follow_symlinks=False)
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and time.time() - info.st_mtime > ABANDONED_AFTER_S


class _Walk:
    """One walk's settings and what it has seen: folders and files by device and inode."""

    def __init__(self, patterns: tuple[str, ...], library: frozenset[str], follow: bool):
        self.patterns, self.library, self.follow = patterns, library, follow
        self.seen_dirs: set[tuple[int, int]] = set()
        self.seen_files: set[tuple[int, int]] = set()

    def folder(self, folder: str, root: str, above: dict[tuple[int, int], str]) -> Iterator[Found]:
        """``above``: the folders this one lies in, on the way down from the root (key: path)."""
        try:
            info = os.stat(folder)
        except OSError as error:
            yield WalkProblem(folder, f"cannot open folder: {error.strerror}")
            return
        key = (info.st_dev, info.st_ino)
        if key in above:
            back = os.fsencode(above[key]).decode("utf-8", "backslashreplace")  # as paths print
            yield WalkProblem(folder, f"symbolic link loop: leads back to {back}, not followed")
            return
        if key in self.seen_dirs:
            return  # a second way into a folder already walked: its photos are found once
        self.seen_dirs.add(key)
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as error:
            yield WalkProblem(folder, f"cannot list folder: {error.strerror}")
            return
        subfolders = []
        for entry in entries:
            if entry.name.startswith(".") and _abandoned(entry):
                yield AbandonedTemp(entry.path)
            if entry.name.startswith(".") or _excluded(entry.path, root, self.patterns):
                continue
            outside = self._outside_link(entry)
            if outside is not None:
                yield outside
                if not outside.followed:
                    continue
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                if entry.name not in SYSTEM_FOLDERS:
                    subfolders.append(entry.path)
            elif os.path.splitext(entry.name)[1].lower() not in IGNORED_EXTENSIONS:
                yield from self.file(entry.path)
        below = above | {key: folder}
        for subfolder in subfolders:
            yield from self.folder(subfolder, root, below)

    def _outside_link(self, entry: os.DirEntry) -> OutsideLink | None:
        """The link ``entry`` is, when its target (there, not broken) lies outside the library."""
        try:
            if not entry.is_symlink():
                return None
        except OSError:
            return None
        target = os.path.realpath(entry.path)
        if is_inside(target, self.library) or not os.path.exists(target):
            return None
        return OutsideLink(entry.path, target, self.follow)

    def file(self, path: str) -> Iterator[FoundFile | WalkProblem]:
        try:
            info = os.stat(path)
        except FileNotFoundError:
            if os.path.islink(path) and has_image_extension(path):
                yield WalkProblem(path, "broken symbolic link")
            return  # vanished between listing and stat: nothing to report
        except OSError as error:
            yield WalkProblem(path, f"cannot stat: {error.strerror}")
            return
        if not stat.S_ISREG(info.st_mode):
            return
        key = (info.st_dev, info.st_ino)
        if key in self.seen_files:
            return
        self.seen_files.add(key)
        yield FoundFile(path, info.st_size, info.st_mtime_ns)
