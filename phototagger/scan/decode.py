"""The decode stage: one file read once, hashed, decoded; a failure is a value, never raised.

The same function runs in a DataLoader worker (the local engine) and in a Ray task (the Ray
engine), so both engines see a file the same way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from dataclasses import dataclass

import torch

from phototagger.errors import ImageError
from phototagger.hashing import content_hash
from phototagger.imaging import ImageFacts, PreprocessSpec, prepare, read_file
from phototagger.tags import ReadTags, read_camera_gps, read_tags

log = logging.getLogger("phototagger.scan")

#: How much lower a decoding process runs than the inference that consumes its batches.
WORKER_NICENESS = 5


@dataclass
class Decoded:
    """One file's outcome: facts and a tensor, or the reason it could not be decoded."""

    index: int
    path: str
    content_hash: str | None = None
    facts: ImageFacts | None = None
    #: The camera's own GPS position (phototagger's estimates are not the camera's).
    camera_gps: tuple[float, float] | None = None
    #: phototagger's own record in the file or its sidecar (a person's `tag`, or an earlier
    #: scan's), whatever the index knows.
    file_tag: ReadTags | None = None
    error: str | None = None


def decode_file(index: int, path: str, spec: PreprocessSpec) -> tuple[Decoded, torch.Tensor | None]:
    """The file at ``path`` (the ``index``-th of the work) as the network's input, or why not."""
    outcome = Decoded(index, path)
    tensor = None
    try:
        data = read_file(path)
        outcome.content_hash = content_hash(data)
        tensor, outcome.facts = prepare(data, spec)
        outcome.camera_gps = read_camera_gps(path, data)
        outcome.file_tag = _file_tag(path, data)
    except ImageError as error:
        outcome.error = str(error)
    said = native_messages.said()
    if said and outcome.error:
        outcome.error += f" ({said})"
    elif said:
        log.info("%s: the decoder said: %s", path, said)
    return outcome, tensor


def defer_to_inference() -> None:
    """Let inference (and, locally, the index and tag writers) win when cores are contended.

    It is the pipeline's single consumer: ahead of it, decoders only fill the queue and then
    leave the last batches to it alone, one core idle. Measured on two cores, 200 photos of
    12 MP, six paired runs: 16.9-19.3 images/s at equal priority, 18.0-21.4 with decoding
    workers at niceness +5, faster in every pair. Once per process: niceness adds up.
    """
    global _deferred
    if _deferred or not hasattr(os, "nice"):  # elsewhere (Windows) equal priority: slower
        return
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICENESS)
    _deferred = True


_deferred = False


def _file_tag(path: str, data: bytes) -> ReadTags | None:
    """phototagger's tag in the file or its sidecar (whatever an index may have forgotten)."""
    try:
        return read_tags(path, data)
    except Exception:  # another tool's XMP we cannot read holds no tag of ours
        return None


class NativeMessages:
    """In a decoding worker, standard error (fd 2) is a file of the worker's own: what C
    decoders print there (libtiff's "OJPEGReadHeaderInfoSecTablesQTable: Missing JPEG
    tables.") is read back after each photo and joins its reason, or the log (--log), so a
    cron run with --quiet stays silent. A worker does nothing else: nothing else is caught."""

    #: Enough for a few lines; a decoder that says more is cut short.
    LIMIT = 1000

    def __init__(self) -> None:
        self._file = None

    def catch(self) -> None:
        self._file = tempfile.TemporaryFile(buffering=0)
        sys.stderr.flush()
        os.dup2(self._file.fileno(), 2)

    def said(self) -> str:
        """What was printed since the last call, on one line; "" where nothing is caught."""
        if self._file is None:
            return ""
        fd = self._file.fileno()
        if not os.lseek(fd, 0, os.SEEK_END):
            return ""
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, self.LIMIT).decode("utf-8", "replace")
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        return "; ".join(line.strip() for line in text.splitlines() if line.strip())


#: This process's catcher: set up by a decoding worker as it starts, idle elsewhere.
native_messages = NativeMessages()
