"""The local engine's decoding: the decode stage in DataLoader workers, stacked into batches."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset

from phototagger.imaging import PreprocessSpec
from phototagger.memory import retain_freed_memory
from phototagger.scan.decode import Decoded, decode_file, defer_to_inference, native_messages

log = logging.getLogger("phototagger.scan")


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
            return decode_file(index, self.paths[index], self.spec)
        finally:
            with self._finished.get_lock():
                self._finished.value += 1

    def all_decoded(self) -> bool:
        """Whether every file has been through a worker (their batches may still be queued)."""
        return self._finished.value >= len(self.paths)


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
    defer_to_inference()
    native_messages.catch()
    # Ctrl-C and a closed terminal's SIGHUP reach the whole process group: the main process
    # decides how the scan ends (Scanner.request_stop), and stops its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
