"""Compare what the walk found with what the index knows: new, changed, moved, unchanged.

An unchanged file (same size and mtime, already predicted by this model) costs no decode; a
file that appears under a new name with the size and content hash of one that disappeared is
a move, and keeps its predictions.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from phototagger.hashing import algorithm_of, file_hash
from phototagger.imaging import sniff_format
from phototagger.index import KnownPhoto
from phototagger.index.store import TagRule
from phototagger.scan.walk import (
    AbandonedTemp,
    Found,
    FoundFile,
    OutsideLink,
    WalkProblem,
    has_image_extension,
)


@dataclass(frozen=True)
class Work:
    """A file to decode and predict, and why."""

    path: str
    size: int
    mtime_ns: int
    reason: str  # new | changed | new-model | retry-write | new-settings | forced


@dataclass(frozen=True)
class Move:
    photo_id: int
    old_path: str
    found: FoundFile


@dataclass
class Plan:
    found: int = 0
    work: list[Work] = field(default_factory=list)
    moves: list[Move] = field(default_factory=list)
    unchanged: int = 0
    #: (path, reason) of files left alone on purpose, e.g. failed before and not changed since.
    skipped: list[tuple[str, str]] = field(default_factory=list)
    missing: set[int] = field(default_factory=set)
    #: Photos marked missing by an earlier scan that are back, unchanged: no decode needed.
    found_again: list[int] = field(default_factory=list)
    problems: list[WalkProblem] = field(default_factory=list)
    #: Temporary copies killed writes left beside photos: to delete.
    abandoned: list[str] = field(default_factory=list)
    #: Links that lead out of the library's folders (followed or not, as the walk was told).
    outside: list[OutsideLink] = field(default_factory=list)

    def count(self, reason: str) -> int:
        return sum(1 for item in self.work if item.reason == reason)


def _gone(path: str) -> bool:
    """Really gone, not merely excluded, hidden or behind a folder that could not be read."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False
    return False


def _writable_folder(path: str) -> bool:
    """Whether the folder of ``path`` takes new files now (a temporary copy, a sidecar): a
    read-only mount or folder is fixed by a person, after which the next scan writes."""
    return os.access(os.path.dirname(path) or ".", os.W_OK | os.X_OK)


def looks_like_image(path: str) -> bool:
    """Content decides; an image extension alone still gets a file examined (and reported)."""
    if has_image_extension(path):
        return True
    try:
        with open(path, "rb") as handle:
            return sniff_format(handle.read(16)) is not None
    except OSError:
        return False


def plan_changes(
    found: Iterable[Found],
    known: Mapping[str, KnownPhoto],
    force: bool = False,
    wants_tag: TagRule | None = None,
    writing: bool = False,
) -> Plan:
    """What this scan must do, file by file; ``wants_tag`` and ``writing`` are the scan's
    tag settings, which an unchanged photo's recorded tags may no longer match (none given:
    recorded tags are taken as they are)."""
    plan = Plan()
    fresh: list[FoundFile] = []
    seen: set[str] = set()
    for item in found:
        if isinstance(item, WalkProblem):
            plan.problems.append(item)
            continue
        if isinstance(item, AbandonedTemp):
            plan.abandoned.append(item.path)
            continue
        if isinstance(item, OutsideLink):
            plan.outside.append(item)
            continue
        seen.add(item.path)
        photo = known.get(item.path)
        if photo is None:
            fresh.append(item)
            continue
        plan.found += 1
        same = photo.size == item.size and photo.mtime_ns == item.mtime_ns
        if not same:
            plan.work.append(Work(item.path, item.size, item.mtime_ns, "changed"))
        elif force:
            plan.work.append(Work(item.path, item.size, item.mtime_ns, "forced"))
        elif photo.status == "failed":
            plan.skipped.append((item.path, "failed before and unchanged since"))
        elif not photo.predicted:
            plan.work.append(Work(item.path, item.size, item.mtime_ns, "new-model"))
        elif photo.write_pending and writing and not _writable_folder(item.path):
            # Retried, it would fail again: decoded for nothing, and reported every night.
            plan.skipped.append((item.path, "tags not written before, folder still read-only"))
        elif photo.write_pending and writing:  # an index-only scan would retry forever
            plan.work.append(Work(item.path, item.size, item.mtime_ns, "retry-write"))
        elif wants_tag is not None and photo.tags_out_of_date(wants_tag, writing):
            plan.work.append(Work(item.path, item.size, item.mtime_ns, "new-settings"))
        else:
            plan.unchanged += 1
            if photo.status == "missing":
                plan.found_again.append(photo.id)
    gone = {path: photo for path, photo in known.items() if path not in seen}
    plan.missing = {
        photo.id for path, photo in gone.items() if photo.status != "missing" and _gone(path)
    }
    by_size: dict[int, list[tuple[str, KnownPhoto]]] = {}
    for path, photo in gone.items():
        if photo.content_hash and photo.size is not None:
            by_size.setdefault(photo.size, []).append((path, photo))
    for item in fresh:
        if not looks_like_image(item.path):
            continue
        plan.found += 1
        move = _find_move(item, by_size)
        if move is None:
            plan.work.append(Work(item.path, item.size, item.mtime_ns, "new"))
            continue
        plan.moves.append(move)
        plan.missing.discard(move.photo_id)
        if not gone[move.old_path].predicted:
            plan.work.append(Work(item.path, item.size, item.mtime_ns, "new-model"))
    return plan


def _find_move(item: FoundFile, by_size: dict[int, list[tuple[str, KnownPhoto]]]) -> Move | None:
    candidates = by_size.get(item.size)
    if not candidates:
        return None
    digests: dict[str, str] = {}  # an older index holds SHA-256 values: one of each at most
    for index, (old_path, photo) in enumerate(candidates):
        algorithm = algorithm_of(photo.content_hash)
        try:
            if algorithm not in digests:
                digests[algorithm] = file_hash(item.path, algorithm)
        except OSError:
            return None
        if digests[algorithm] == photo.content_hash and _gone(old_path):
            del candidates[index]  # one old photo moves to one new place
            return Move(photo.id, old_path, item)
    return None
