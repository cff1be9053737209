"""Decode photos in DataLoader workers; a file that fails becomes a value, never an exception.

Each file is read once: its bytes are hashed (for move detection) and decoded from memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset

from phototagger.errors import ImageError
from phototagger.imaging import ImageFacts, PreprocessSpec, decode, read_file, to_input


@dataclass
class Decoded:
    """One file's outcome: facts and a tensor, or the reason it could not be decoded."""

    index: int
    path: str
    content_hash: str | None = None
    facts: ImageFacts | None = None
    error: str | None = None


@dataclass
class Batch:
    """The decoded tensors of a batch (only the files that decoded) and every file's outcome."""

    inputs: torch.Tensor
    items: list[Decoded]

    def pin_memory(self) -> Batch:
        """Called by the DataLoader on CUDA runs, so host-to-device copies can be asynchronous."""
        return Batch(self.inputs.pin_memory(), self.items)


class PhotoDataset(Dataset):
    def __init__(self, paths: Sequence[str], spec: PreprocessSpec):
        self.paths = list(paths)
        self.spec = spec

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Decoded, torch.Tensor | None]:
        path = self.paths[index]
        outcome = Decoded(index, path)
        try:
            data = read_file(path)
            outcome.content_hash = hashlib.sha256(data).hexdigest()
            image, outcome.facts = decode(data, min_side=self.spec.resize)
            return outcome, to_input(image, self.spec)
        except ImageError as error:
            outcome.error = str(error)
        except Exception as error:  # a decoder bug must not end the scan: record it
            outcome.error = f"cannot decode: {type(error).__name__}: {error}"
        return outcome, None


def collate(samples: list[tuple[Decoded, torch.Tensor | None]]) -> Batch:
    tensors = [tensor for _, tensor in samples if tensor is not None]
    inputs = torch.stack(tensors) if tensors else torch.empty(0)
    return Batch(inputs, [outcome for outcome, _ in samples])


def make_loader(
    paths: Sequence[str],
    spec: PreprocessSpec,
    batch_size: int = 32,
    workers: int = 2,
    pin_memory: bool = False,
) -> DataLoader:
    """Batches in file order; workers decode while the main process runs the model."""
    return DataLoader(
        PhotoDataset(paths, spec),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        persistent_workers=False,
        prefetch_factor=4 if workers else None,
    )
