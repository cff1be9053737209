"""The Ray engine: decode as Ray Data tasks where the files are, infer in actors.

The plan, decide, record and write stay on the driver, where the index is; the work list
becomes a Ray Dataset, decoded by CPU tasks (the same ``decode_file`` as the local engine's
workers) and answered by inference actors that load the model once (one GPU each where the
cluster has GPUs). Results stream back in order of completion: the record stage does not
need file order. Every node must see the library at the same paths (a shared file system);
paths travel as bytes, so names that are not UTF-8 arrive as they left.

A Ray worker that dies is Ray's to recover: a task is run again (three times), a dead actor
restarted; a photo delivered twice is recorded once.
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
import warnings
from collections.abc import Iterator, Sequence

import numpy as np

from phototagger.errors import ConfigError
from phototagger.imaging import PreprocessSpec
from phototagger.scan.decode import Decoded, decode_file, defer_to_inference
from phototagger.scan.infer import Inference
from phototagger.scan.item import ScanItem
from phototagger.scan.options import ScanOptions

log = logging.getLogger("phototagger.scan")

#: Times Ray runs a decode task again after its worker died (Ray Data's default: for ever,
#: which a file that crashes its decoder every time would make a scan that never ends).
DECODE_RETRIES = 3
#: What a decode task reserves on its node: a worker with torch, and a batch of photos decoded
#: in draft mode (measured: up to 470 MB with 12 MP JPEGs). With the retries, it also keeps
#: Ray Data from fusing decoding into the inference actors (their Ray options differ): a
#: file that crashes its decoder would crash an actor, which Ray restarts without end, where
#: a task is retried and then its block dropped.
DECODE_MEMORY = 2**30

def require_ray():
    """The ``ray`` module, or a one-line ConfigError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401 - the extra is ray[data], not Ray's core alone
    except ImportError:
        raise ConfigError(
            "the Ray engine needs Ray Data: pip install 'phototagger[ray]'") from None
    return ray


class RayEngine:
    """Runs the decode and infer stages on a Ray cluster (a local one when none is given)."""

    def __init__(self, inference: Inference, options: ScanOptions, stop: threading.Event):
        self.ray = require_ray()
        self.inference = inference
        self.options = options
        self._stop = stop

    def run(self, items: Sequence[ScanItem]) -> Iterator[list[ScanItem]]:
        """The items as their batches finish. A file whose decoding kills its Ray worker
        every time fails its whole block: the block's other files are decoded again, one
        block each, and the culprit is named, as the local engine names it."""
        ray = self.ray
        started_here = not ray.is_initialized()
        if started_here:
            _start(ray, self.options.ray_address)
        try:
            left = dict(enumerate(items))
            yield from self._answered(left, self.options.batch_size)
            if left and not self._stop.is_set():
                log.warning("a Ray task failed on %d files; decoding them one by one", len(left))
                yield from self._answered(left, 1)
            if left and not self._stop.is_set():
                for index, item in left.items():
                    item.decoded = Decoded(index, item.path,
                                           error="the decoder crashed on this file")
                yield list(left.values())
        finally:
            if started_here:
                ray.shutdown()

    def _answered(self, left: dict[int, ScanItem], block: int) -> Iterator[list[ScanItem]]:
        """Run ``left`` through the stages in blocks of ``block`` files; what comes back
        leaves ``left`` (once: a retried task may deliver a photo again)."""
        dataset = self._dataset(left, block)
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            done = []
            for index, blob in zip(batch["index"], batch["result"], strict=True):
                item = left.pop(int(index), None)
                if item is not None:
                    item.decoded, item.answer = pickle.loads(blob)
                    done.append(item)
            if done:
                yield done
            if self._stop.is_set():
                return

    def _dataset(self, left: dict[int, ScanItem], block: int):
        ray = self.ray
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.execution_options.preserve_order = False
        # A block whose task keeps failing is dropped, not the scan: run() sees its files
        # missing and isolates them.
        context.max_errored_blocks = -1
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
        actors = self.options.ray_actors or gpus or max(1, cpus // 2)
        if not gpus and actors >= cpus:  # Ray would wait for a free CPU for ever
            raise ConfigError(f"--ray-actors {actors} leaves none of the cluster's {cpus} CPUs "
                              "for decoding: ask for fewer")
        # On CPUs each actor holds a core, so that Ray spreads them over the nodes; decoding
        # gets the rest (measured on two cores: as fast as two decoders beside an actor that
        # holds none, within the runs' spread).
        decoders = max(1, cpus - (0 if gpus else actors))
        size = self.options.batch_size
        model = self.inference.model
        rows = [{"index": index, "path": os.fsencode(item.path)} for index, item in left.items()]
        # At least a block for each decoder: a small scan is decoded in parallel too.
        blocks = min(len(rows), max(decoders, -(-len(rows) // block)))
        dataset = ray.data.from_items(rows, override_num_blocks=blocks)
        with warnings.catch_warnings():
            # Ray Data takes max_retries only among the "ray_remote_args" it deprecates, with
            # no replacement yet: setup.cfg keeps Ray below the release that drops them.
            warnings.simplefilter("ignore", DeprecationWarning)
            dataset = dataset.map_batches(
                _decode_batch, fn_args=(model.preprocess,), batch_size=block,
                batch_format="numpy", num_cpus=1, memory=DECODE_MEMORY,
                compute=ray.data.TaskPoolStrategy(size=decoders), max_retries=DECODE_RETRIES)
        return dataset.map_batches(
            _InferenceActor,
            fn_constructor_args=(str(model.path), "cuda" if gpus else "cpu",
                                 self.inference.vocabulary, self.inference.top_k, size),
            batch_size=size, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_gpus=1 if gpus else 0, num_cpus=0 if gpus else 1)


def _start(ray, address: str | None) -> None:
    """Join the cluster at ``address``, or start one on this machine for this scan."""
    # No usage statistics are sent anywhere: phototagger downloads and uploads nothing.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray's own messages (its start, each dataset's plan and statistics) are for Ray's logs
    # (/tmp/ray/session_*/logs), not a scan's output; its errors still show.
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    except ConnectionError as error:
        raise ConfigError(f"cannot reach the Ray cluster at {address}: {error}") from None


def _decode_batch(batch: dict, spec: PreprocessSpec) -> dict:
    """The decode stage as a Ray task: each row's outcome and input, pickled together."""
    defer_to_inference()
    out = []
    for index, path in zip(batch["index"], batch["path"], strict=True):
        decoded, tensor = decode_file(int(index), os.fsdecode(bytes(path)), spec)
        out.append(pickle.dumps((decoded, None if tensor is None else tensor.numpy())))
    return {"index": batch["index"], "decoded": np.array(out, dtype=object)}


class _InferenceActor:
    """The infer stage as a Ray actor: the model loaded once, then batch after batch."""

    def __init__(self, model_path: str, device: str, vocabulary, top_k: int, batch_size: int):
        from phototagger.model import LandmarkModel

        model = LandmarkModel.load(model_path, device)
        self.inference = Inference(model, vocabulary, top_k, batch_size)

    def __call__(self, batch: dict) -> dict:
        import torch

        rows = [pickle.loads(blob) for blob in batch["decoded"]]
        inputs = [torch.from_numpy(array) for _, array in rows if array is not None]
        answers = iter(self.inference(torch.stack(inputs)) if inputs else [])
        results = [pickle.dumps((decoded, None if array is None else next(answers)))
                   for decoded, array in rows]
        return {"index": batch["index"], "result": np.array(results, dtype=object)}
