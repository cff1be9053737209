"""The scan's memory settings: big freed blocks are reused, not faulted in again each batch;
the long-lived heap is left out of garbage collection while workers are forked and run."""

import gc
import platform
import subprocess
import sys
import weakref

import pytest

from phototagger.scan.memory import frozen_heap

CHURN = """
import resource, sys
from phototagger.scan.memory import retain_freed_memory
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


@pytest.mark.skipif(platform.libc_ver()[0] == "glibc", reason="for other C libraries")
def test_elsewhere_nothing_changes():
    from phototagger.scan.memory import retain_freed_memory

    assert retain_freed_memory() is False


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
