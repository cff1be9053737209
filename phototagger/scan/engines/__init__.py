"""Engines run the decode and infer stages; the driver runs the rest (phototagger.scan.pipeline).

An engine takes the plan's items and yields them back in batches, each item with its
``decoded`` and ``answer`` filled, in any order; it never touches the index or a file's tags.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

from phototagger.errors import ConfigError
from phototagger.scan.item import ScanItem
from phototagger.scan.options import ENGINES, ScanOptions

if TYPE_CHECKING:
    from phototagger.scan.infer import Inference


class Engine(Protocol):
    def run(self, items: Sequence[ScanItem]) -> Iterator[list[ScanItem]]:
        """The items, decoded and answered, batch by batch; stops early when the scan's stop
        event is set (closing the iterator cleans up)."""


def check_engine(options: ScanOptions) -> None:
    """Refuse, before a scan starts, an engine that is unknown or not installed."""
    if options.engine not in ENGINES:
        raise ConfigError(f"unknown engine {options.engine!r}: use {' or '.join(ENGINES)}")
    if options.engine == "ray":
        from phototagger.scan.engines.ray import require_ray

        require_ray()


def make_engine(inference: Inference, options: ScanOptions, stop: threading.Event) -> Engine:
    """The engine the options name (``check_engine`` has accepted them)."""
    if options.engine == "ray":
        from phototagger.scan.engines.ray import RayEngine

        return RayEngine(inference, options, stop)
    from phototagger.scan.engines.local import LocalEngine

    return LocalEngine(inference, options, stop)
