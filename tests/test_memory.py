"""Memory settings: in a scan big freed blocks are reused, not faulted in again each batch, and
the long-lived heap is left out of garbage collection while workers are forked and run; in the
app big blocks freed on any thread go back to the system."""

import gc
import platform
import subprocess
import sys
import weakref

import pytest

from phototagger.memory import frozen_heap

CHURN = """
import resource, sys
from phototagger.memory import retain_freed_memory
if sys.argv[1] == "tuned":
    assert retain_freed_memory()
def batch():  # like a batch of photos or activations: big blocks, all freed at the end
    blocks = [b"x" * (6 << 20) for _ in range(8)]
    del blocks
batch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    batch()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode: str) -> int:
    result = subprocess.run([sys.executable, "-c", CHURN, mode], capture_output=True, text=True,
                            check=True)
    return int(result.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_freed_blocks_are_reused_instead_of_returned_to_the_kernel():
    pages = 5 * 8 * (6 << 20) // 4096
    assert page_faults("default") > pages // 2  # glibc on its own: the pages come back anew
    assert page_faults("tuned") < pages // 50


HELD = """
import sys, threading
from pathlib import Path
from phototagger.memory import return_freed_memory
if sys.argv[1] == "tuned":
    assert return_freed_memory()
def rss():
    return int(next(line.split()[1] for line in Path("/proc/self/status").read_text().splitlines()
                    if line.startswith("VmRSS:"))) << 10
kept = []
def decode():  # like an image decoded on a server's thread: blocks, and a little kept after
    blocks = []
    for _ in range(16):
        blocks.append(bytearray(16 << 20))
        kept.append(bytearray(4096))
    del blocks
warm = threading.Thread(target=decode)  # glibc moves its threshold up to a freed block...
warm.start(); warm.join()
before = rss()
for _ in range(3):  # ...and from then on serves such blocks from a thread's heap
    thread = threading.Thread(target=decode)
    thread.start(); thread.join()
print(rss() - before)
"""


def still_held(mode: str) -> int:
    result = subprocess.run([sys.executable, "-c", HELD, mode], capture_output=True, text=True,
                            check=True)
    return int(result.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_the_app_gives_big_freed_blocks_back_whatever_thread_freed_them():
    decoded = 16 * (16 << 20)
    assert still_held("default") > decoded // 2  # glibc on its own keeps them
    assert still_held("tuned") < decoded // 20


@pytest.mark.skipif(platform.libc_ver()[0] == "glibc", reason="for other C libraries")
def test_elsewhere_nothing_changes():
    from phototagger.memory import retain_freed_memory, return_freed_memory

    assert retain_freed_memory() is False and return_freed_memory() is False


def test_objects_made_before_the_scan_are_left_to_the_collector_again_after_it():
    class Node:
        pass

    node = Node()
    node.itself = node  # a reference cycle: only the garbage collector frees it
    alive = weakref.ref(node)
    with frozen_heap():
        del node
        gc.collect()
        assert alive() is not None  # frozen: not even looked at
    gc.collect()
    assert alive() is None  # thawed: collected as usual


def test_a_heap_the_program_froze_itself_stays_frozen():
    gc.freeze()
    try:
        with frozen_heap():
            pass
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_the_heap_thaws_when_the_last_of_two_overlapping_scans_ends():
    with frozen_heap():
        with frozen_heap():
            pass
        assert gc.get_freeze_count() > 0  # the first is still running
    assert gc.get_freeze_count() == 0
