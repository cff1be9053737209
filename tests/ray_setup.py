"""Run in every Ray worker of the tests' cluster (Ray's ``worker_process_setup_hook``).

A file whose bytes carry ``CRASH_MARK`` kills the worker that decodes it, as a crash in a
native decoder would: the tests' stand-in for such a file, which Ray workers (started by
Ray, not forked from the test) could not be patched to see otherwise.
"""

import os

CRASH_MARK = b"phototagger-test: crash the decoder"


def install() -> None:
    from phototagger.scan import decode

    real_prepare = decode.prepare

    def prepare(data, spec):
        if CRASH_MARK in data:
            os._exit(9)
        return real_prepare(data, spec)

    decode.prepare = prepare
