"""How a photo is recognised after a move or a rename: a hash of its bytes.

xxh3-128 rather than SHA-256: the hash only has to tell a photo apart from the other photos
of the same size in one library, not to resist forgery, and the scan hashes every photo it
decodes and every file it rewrites. On a 3 MB photo it costs 0.08 ms of CPU against 1.9 ms.
Values name their algorithm ("xxh3:..."); a bare 64-digit value is the SHA-256 that indexes
written before held, still compared correctly until the file is hashed again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import xxhash

PREFIX = "xxh3:"
_BLOCK = 1 << 20


Buffer = bytes | bytearray | memoryview


def content_hash(data: Buffer | Iterable[Buffer]) -> str:
    """The hash of a file's bytes, given whole or as the consecutive pieces of the file."""
    digest = xxhash.xxh3_128()
    for piece in [data] if isinstance(data, Buffer) else data:
        digest.update(piece)
    return PREFIX + digest.hexdigest()


def algorithm_of(stored: str) -> str:
    """``xxh3``, or ``sha256`` for a value an older index holds."""
    return "xxh3" if stored.startswith(PREFIX) else "sha256"


def file_hash(path: str, algorithm: str = "xxh3") -> str:
    """The hash of the file at ``path``; ``sha256`` where that is what is wanted (a model
    file's identity, the value an older index holds)."""
    digest = hashlib.sha256() if algorithm == "sha256" else xxhash.xxh3_128()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest() if algorithm == "sha256" else PREFIX + digest.hexdigest()
