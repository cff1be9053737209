"""The Ray engine: decode as Ray Data tasks where the files are, infer in actors.

The plan, decide, record and write stay on the driver, where the index is; the work list
becomes a Ray Dataset, decoded by CPU tasks (the same ``decode_file`` as the local engine's
workers) and answered by inference actors that load the model once (one GPU each where the
cluster has GPUs). Results stream back in order of completion: the record stage does not
need file order. Every node must see the library at the same paths (a shared file system);
paths travel as bytes, so names that are not UTF-8 arrive as they left.

A Ray worker that dies is Ray's to recover: its task is run again, a dead actor restarted.
A photo delivered twice (a task retried after its output was sent) is recorded once.
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
from collections.abc import Iterator, Sequence

import numpy as np

from phototagger.errors import ConfigError
from phototagger.imaging import PreprocessSpec
from phototagger.scan.decode import decode_file
from phototagger.scan.infer import Inference
from phototagger.scan.item import ScanItem
from phototagger.scan.options import ScanOptions

log = logging.getLogger("phototagger.scan")

#: Times Ray runs a task again, or restarts an actor, after its worker process died.
RETRIES = 3


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
        ray = self.ray
        started_here = not ray.is_initialized()
        if started_here:
            _start(ray, self.options.ray_address)
        try:
            seen: set[int] = set()
            for batch in self._dataset(items).iter_batches(batch_size=None,
                                                           batch_format="numpy"):
                done = []
                for index, blob in zip(batch["index"], batch["result"], strict=True):
                    index = int(index)
                    if index in seen:
                        continue
                    seen.add(index)
                    item = items[index]
                    item.decoded, item.answer = pickle.loads(blob)
                    done.append(item)
                if done:
                    yield done
                if self._stop.is_set():
                    return
        finally:
            if started_here:
                ray.shutdown()

    def _dataset(self, items: Sequence[ScanItem]):
        ray = self.ray
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.execution_options.preserve_order = False
        gpus = int(ray.cluster_resources().get("GPU", 0))
        cpus = int(ray.cluster_resources().get("CPU", 1))
        actors = self.options.ray_actors or gpus or max(1, cpus // 2)
        size = self.options.batch_size
        model = self.inference.model
        rows = [{"index": index, "path": os.fsencode(item.path)}
                for index, item in enumerate(items)]
        decoding = max(1, cpus - (0 if gpus else actors))
        dataset = ray.data.from_items(rows, override_num_blocks=max(1, -(-len(rows) // size)))
        dataset = dataset.map_batches(
            _decode_batch, fn_args=(model.preprocess,), batch_size=size, batch_format="numpy",
            num_cpus=1, concurrency=decoding, max_retries=RETRIES)
        return dataset.map_batches(
            _InferenceActor,
            fn_constructor_args=(str(model.path), "cuda" if gpus else "cpu",
                                 self.inference.vocabulary, self.inference.top_k, size),
            batch_size=size, batch_format="numpy", concurrency=actors,
            num_gpus=1 if gpus else 0, num_cpus=0 if gpus else 1,
            max_restarts=RETRIES, max_task_retries=RETRIES)


def _start(ray, address: str | None) -> None:
    """Join the cluster at ``address``, or start one on this machine for this scan."""
    # No usage statistics are sent anywhere: phototagger downloads and uploads nothing.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING, configure_logging=False)
    except ConnectionError as error:
        raise ConfigError(f"cannot reach the Ray cluster at {address}: {error}") from None


def _decode_batch(batch: dict, spec: PreprocessSpec) -> dict:
    """The decode stage as a Ray task: each row's outcome and input, pickled together."""
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
