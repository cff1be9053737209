"""Photo embeddings as the index keeps them, and the search for the photos most alike.

An embedding is a unit vector (phototagger.model.Scores.embeddings); the index stores it as
float16 bytes: 256 bytes at the shipped model's 128 dimensions, half a percent from the float32
cosines (it only ranks neighbours). Searching is a matrix product over the library's
embeddings in numpy, so ``similar`` needs neither torch nor the model file.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: How the index stores an embedding: little-endian float16.
STORED = np.dtype("<f2")


def encode(vector: Sequence[float] | np.ndarray) -> bytes:
    """One embedding as the index stores it."""
    return np.asarray(vector, dtype=np.float32).astype(STORED).tobytes()


def decode(blobs: Sequence[bytes]) -> np.ndarray:
    """Stored embeddings as one float32 matrix, a row each (none: a 0 x 0 matrix)."""
    if not blobs:
        return np.zeros((0, 0), dtype=np.float32)
    width = len(blobs[0]) // STORED.itemsize
    return np.frombuffer(b"".join(blobs), dtype=STORED).astype(np.float32).reshape(-1, width)
