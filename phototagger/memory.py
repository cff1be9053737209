"""What a process does with the memory it frees: keep it (a scan) or give it back (the app).

glibc's malloc serves big blocks (a 3 MB photo, a 19 MB activation of the network, an image
the app decodes) by mapping fresh pages or by growing a heap, and on its own moves its mapping
threshold up to the largest block freed so far: from then on such blocks come from a heap,
which gives back only its free top. A scan frees and reallocates the same blocks every batch:
it keeps them (``retain_freed_memory``) instead of faulting each 4 KiB page back in. The app
decodes now and then, on many threads, each with a heap of its own: it gives big blocks back
as soon as they are freed (``return_freed_memory``), so its memory falls back to rest between
uploads. Also here: the long-lived heap left out of garbage collection during a scan.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import platform
import threading
from collections.abc import Callable, Iterator

#: mallopt parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Blocks up to this size come from the heap: glibc's upper limit, 32 MiB on 64-bit systems.
MMAP_THRESHOLD = 4 * 1024 * 1024 * ctypes.sizeof(ctypes.c_long)
#: Free memory at the top of the heap is returned to the OS only beyond this.
TRIM_THRESHOLD = 512 << 20
#: glibc's own starting thresholds (128 KiB), held fixed: blocks above are always mapped.
RETURN_THRESHOLD = 128 << 10


def retain_freed_memory() -> bool:
    """Tune glibc's malloc for a process that frees and reallocates big blocks in a loop.

    Returns whether both settings applied: elsewhere (macOS, Windows, musl) nothing changes.
    """
    return _set_thresholds(MMAP_THRESHOLD, TRIM_THRESHOLD)


def return_freed_memory() -> bool:
    """Tune glibc's malloc for a server that now and then decodes a big image on one of its
    threads: blocks above 128 KiB are mapped, and unmapped as soon as they are freed.

    Returns whether both settings applied: elsewhere (macOS, Windows, musl) nothing changes.
    """
    return _set_thresholds(RETURN_THRESHOLD, RETURN_THRESHOLD)


def _set_thresholds(mmap_threshold: int, trim_threshold: int) -> bool:
    mallopt = _mallopt()
    if mallopt is None:
        return False
    # Setting either threshold also stops glibc from adjusting them on its own.
    mapped = mallopt(_M_MMAP_THRESHOLD, mmap_threshold)
    trimmed = mallopt(_M_TRIM_THRESHOLD, trim_threshold)
    return bool(mapped and trimmed)


def _mallopt() -> Callable[[int, int], int] | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        mallopt = ctypes.CDLL(None).mallopt  # glibc's own symbols, already in the process
    except (OSError, AttributeError):
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt


#: Scans running in this process inside frozen_heap: the heap is thawed when the last ends.
_freezers = 0
_freezers_lock = threading.Lock()


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Keep the objects that exist now out of the garbage collector's passes until the end.

    By the time a scan predicts, the process holds about 250,000 long-lived objects (torch,
    SQLAlchemy, the model's metadata). Each full collection walks them all: in this process,
    and in every forked decoding worker, where writing to their headers also copies the pages
    they sit on. Frozen before the workers fork (as Python's documentation of ``gc.freeze``
    advises), they are left alone; thawed after, so nothing they hold stays uncollected. A
    program that froze its own heap already (a server that forks) keeps its own arrangement.
    """
    global _freezers
    with _freezers_lock:
        ours = _freezers > 0 or gc.get_freeze_count() == 0
        if ours:
            gc.freeze()  # a second scan's freeze adds what was made since the first's
            _freezers += 1
    try:
        yield
    finally:
        if ours:
            with _freezers_lock:
                _freezers -= 1
                if not _freezers:
                    gc.unfreeze()
