"""The local engine: decode in DataLoader worker processes, infer in this one.

Batches come back in file order. A decoder that kills its worker costs one file; a machine
whose shared memory is full decodes in this process instead.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence

from phototagger.memory import frozen_heap, retain_freed_memory
from phototagger.scan.dataset import Batch, make_loader
from phototagger.scan.decode import Decoded
from phototagger.scan.infer import Inference
from phototagger.scan.item import ScanItem
from phototagger.scan.options import ScanOptions

log = logging.getLogger("phototagger.scan")


def _cores() -> int:
    """CPUs this process may run on (a container's or taskset's limit, not the machine's)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class LocalEngine:
    """Runs the decode and infer stages on this machine, through a PyTorch DataLoader."""

    def __init__(self, inference: Inference, options: ScanOptions, stop: threading.Event):
        self.inference = inference
        self.model = inference.model
        self.options = options
        self._stop = stop

    def run(self, items: Sequence[ScanItem]) -> Iterator[list[ScanItem]]:
        """The items batch by batch, each decoded and (where it decoded) answered."""
        import torch  # only now: an unchanged library is rescanned without loading torch

        retain_freed_memory()
        all_threads = torch.get_num_threads()
        # On CUDA the network's first call at the scan's batch shape takes seconds (kernel
        # selection): made while the workers decode, not after the first batch arrives.
        size, on_cuda = self.options.batch_size, self.model.device.type == "cuda"
        warm_up = (lambda: self.model.warm_up(size)) if on_cuda else None
        try:
            with frozen_heap():
                for batch in self._batches([item.path for item in items], warm_up):
                    # Once the workers are through, the batches still queued get every core.
                    busy = not batch.decoding_done  # again after a worker died and was replaced
                    torch.set_num_threads(
                        self._network_threads(all_threads) if busy else all_threads)
                    decoded = [outcome for outcome in batch.items if outcome.error is None]
                    answers = dict(zip((outcome.index for outcome in decoded),
                                       self.inference(batch.inputs), strict=True))
                    done = []
                    for outcome in batch.items:
                        item = items[outcome.index]
                        item.decoded, item.answer = outcome, answers.get(outcome.index)
                        done.append(item)
                    yield done
        finally:
            torch.set_num_threads(all_threads)

    def _network_threads(self, default: int) -> int:
        """CPU threads for the network: the cores the decoding workers leave, never more.

        Oversubscribed, the network's threads wait on each other at every layer. Measured on
        two cores (120 photos of 12 MP, shipped model, two workers): 16.6 images/s with one
        thread against 14.5 with torch's default of two.
        """
        workers = self._decoding_workers()
        if self.model.device.type != "cpu" or not workers:
            return default
        return min(default, max(1, _cores() - workers))

    def _decoding_workers(self) -> int:
        """The asked-for number, or: on a CPU half the cores (decoding a 12 MP JPEG costs about
        what the network costs; two at least, best on two cores as measured), with CUDA all
        but two (the main thread feeds the GPU and records, the writers need some CPU)."""
        if self.options.workers is not None:
            return self.options.workers
        if self.model.device.type == "cuda":
            return max(2, _cores() - 2)
        return max(2, _cores() // 2)

    def _batches(
        self, paths: list[str], while_decoding: Callable[[], None] | None = None
    ) -> Iterator[Batch]:
        """Decoded batches in file order; a decoder that kills its worker costs one file.

        ``while_decoding`` is called once, as soon as the workers have started on the first
        batches (with no workers, before decoding): work that would otherwise wait for them.

        When a worker process dies (a crash in a native decoder, the OOM killer), the next
        batch's files are decoded again one by one, each in a worker of its own, so the
        culprit is named and everything else is still predicted. When the workers cannot hand
        batches over (shared memory full), the rest is decoded in this process.
        """
        pin = self.model.device.type == "cuda"
        size = self.options.batch_size
        # A worker decodes whole batches: more workers than batches would only cost start-ups.
        workers = min(self._decoding_workers(), -(-len(paths) // size))
        start = 0
        while start < len(paths):
            loader = make_loader(paths[start:], self.model.preprocess, size, workers, pin)
            batches = iter(loader)  # the workers start decoding here
            if while_decoding is not None:
                while_decoding()
                while_decoding = None
            next_index = start
            try:
                for batch in batches:
                    if batch.unshared is not None:
                        break
                    for item in batch.items:
                        item.index += start
                    batch.decoding_done = not workers or loader.dataset.all_decoded()
                    next_index = batch.items[-1].index + 1
                    yield batch
                else:
                    return
            except RuntimeError as error:
                if not workers:
                    raise
                if self._stop.is_set():  # a SIGTERM to the whole process group got it too
                    return
                log.warning("a decoding worker died (%s); isolating its files", error)
            else:
                log.warning(
                    "decoding workers cannot share their batches (%s): decoding in this process "
                    "from here, more slowly. Give /dev/shm more room (docker run --shm-size=1g) "
                    "or pass --workers 0",
                    batch.unshared,
                )
                del batches  # its workers stop now, not when the garbage collector finds them
                workers, start = 0, next_index
                continue
            end = min(len(paths), next_index + size)
            for index in range(next_index, end):
                yield self._isolated(paths[index], index, pin)
            start = end

    def _isolated(self, path: str, index: int, pin: bool) -> Batch:
        """Decode one file in a worker of its own; if that worker dies too, the file is named."""
        import torch

        try:
            [batch] = list(make_loader([path], self.model.preprocess, 1, 1, pin))
        except RuntimeError:
            crashed = Decoded(index, path, error="the decoder crashed on this file")
            return Batch(inputs=torch.empty(0), items=[crashed])
        if batch.unshared is not None:  # its worker survived decoding it: safe to do here
            [batch] = list(make_loader([path], self.model.preprocess, 1, 0, pin))
        batch.items[0].index = index
        return batch
