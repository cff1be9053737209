"""Decode photos in DataLoader workers; a file that fails becomes a value, never an exception.

Each file is read once: its bytes are hashed (for move detection) and decoded from memory.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset

from phototagger.errors import ImageError
from phototagger.hashing import content_hash
from phototagger.imaging import ImageFacts, PreprocessSpec, prepare, read_file
from phototagger.memory import retain_freed_memory
from phototagger.tags import ReadTags, read_camera_gps, read_tags

#: How much lower decoding workers run than the process that consumes their batches.
WORKER_NICENESS = 5
log = logging.getLogger("phototagger.scan")


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


@dataclass
class Batch:
    """The decoded tensors of a batch (only the files that decoded) and every file's outcome."""

    inputs: torch.Tensor
    items: list[Decoded]
    #: Set by the consumer: no file is left to decode, so no worker needs a core any more.
    decoding_done: bool = False
    #: Why the worker could not hand the decoded inputs over (shared memory full), if so.
    unshared: str | None = None

    def pin_memory(self) -> Batch:
        """Called by the DataLoader on CUDA runs, so host-to-device copies can be asynchronous."""
        return Batch(self.inputs.pin_memory(), self.items, self.decoding_done, self.unshared)


class PhotoDataset(Dataset):
    def __init__(self, paths: Sequence[str], spec: PreprocessSpec, workers: int = 0):
        self.paths = list(paths)
        self.spec = spec
        # Counted across the worker processes in shared memory (inherited or passed at their
        # start); decoding in this process needs none, and making some would fix the
        # process's multiprocessing start method as a side effect.
        self._finished = multiprocessing.Value("q", 0) if workers else _InProcessCount()

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Decoded, torch.Tensor | None]:
        try:
            return self._decode(index)
        finally:
            with self._finished.get_lock():
                self._finished.value += 1

    def all_decoded(self) -> bool:
        """Whether every file has been through a worker (their batches may still be queued)."""
        return self._finished.value >= len(self.paths)

    def _decode(self, index: int) -> tuple[Decoded, torch.Tensor | None]:
        path = self.paths[index]
        outcome = Decoded(index, path)
        tensor = None
        try:
            data = read_file(path)
            outcome.content_hash = content_hash(data)
            tensor, outcome.facts = prepare(data, self.spec)
            outcome.camera_gps = read_camera_gps(path, data)
            outcome.file_tag = _file_tag(path, data)
        except ImageError as error:
            outcome.error = str(error)
        said = _native_messages.said()
        if said and outcome.error:
            outcome.error += f" ({said})"
        elif said:
            log.info("%s: the decoder said: %s", path, said)
        return outcome, tensor


class _NativeMessages:
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


_native_messages = _NativeMessages()


def _file_tag(path: str, data: bytes) -> ReadTags | None:
    """phototagger's tag in the file or its sidecar (whatever an index may have forgotten)."""
    try:
        return read_tags(path, data)
    except Exception:  # another tool's XMP we cannot read holds no tag of ours
        return None


class _InProcessCount:
    """The part of ``multiprocessing.Value`` a dataset uses, for decoding in this process."""

    value = 0

    def get_lock(self) -> contextlib.nullcontext:
        return contextlib.nullcontext()


def collate(samples: list[tuple[Decoded, torch.Tensor | None]]) -> Batch:
    """Stack a batch; in a worker, straight into shared memory.

    Left to the queue's feeder thread, that move fails silently when /dev/shm is full: the
    batch is dropped and the scan waits for it forever (a 64 MB Docker /dev/shm holds three
    batches). Here a failure comes back as a batch without inputs that says why.
    """
    items = [outcome for outcome, _ in samples]
    tensors = [tensor for _, tensor in samples if tensor is not None]
    if not tensors:
        return Batch(torch.empty(0), items)
    inputs = torch.empty((len(tensors), *tensors[0].shape), dtype=tensors[0].dtype)
    if torch.utils.data.get_worker_info() is not None:
        try:
            inputs.share_memory_()
        except RuntimeError as error:
            return Batch(torch.empty(0), items, unshared=str(error))
    return Batch(torch.stack(tensors, out=inputs), items)


def _dead_workers_raise_in_next() -> None:
    """Make a dead worker surface as a RuntimeError from the loader's ``next()``.

    torch installs a SIGCHLD handler that raises in whatever the main thread happens to be
    doing (recording, writing a file); the scan needs the error where it can isolate the
    batch instead. Without the handler the DataLoader still notices a dead worker, within its
    status-check interval (5 s). Uses torch's private flag: checked by tests/test_scan.py.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    from torch.utils.data._utils import signal_handling

    signal_handling._SIGCHLD_handler_set = True
    handler = signal.getsignal(signal.SIGCHLD)
    if getattr(handler, "__module__", None) == signal_handling.__name__:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)


def make_loader(
    paths: Sequence[str],
    spec: PreprocessSpec,
    batch_size: int = 32,
    workers: int = 2,
    pin_memory: bool = False,
) -> DataLoader:
    """Batches in file order; workers decode while the main process runs the model."""
    if workers:
        _dead_workers_raise_in_next()
    return DataLoader(
        PhotoDataset(paths, spec, workers),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        persistent_workers=False,
        prefetch_factor=4 if workers else None,
        worker_init_fn=_init_worker,
    )


def _init_worker(worker_id: int) -> None:
    # Inherited from the main process when workers are forked, not when they are spawned.
    retain_freed_memory()
    _defer_to_main_process()
    _native_messages.catch()
    # Ctrl-C and a closed terminal's SIGHUP reach the whole process group: the main process
    # decides how the scan ends (Scanner.request_stop), and stops its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)


def _defer_to_main_process() -> None:
    """Let the main process (network, index, tag writers) win when cores are contended.

    It is the pipeline's single consumer: ahead of it, workers only fill the prefetch queue
    and then leave the last batches to it alone, one core idle. Measured on two cores, 200
    photos of 12 MP, six paired runs: 16.9-19.3 images/s at equal priority, 18.0-21.4 with
    workers at niceness +5, faster in every pair.
    """
    if hasattr(os, "nice"):  # elsewhere (Windows) equal priority: slower, still correct
        with contextlib.suppress(OSError):
            os.nice(WORKER_NICENESS)
