"""The one record a photo's work travels in, from the plan to the tag writer.

Each stage fills its own part and reads only what the stages before it filled, so data moves
one way and no stage matches results to photos by their position in a list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from phototagger.scan.changes import Work

if TYPE_CHECKING:
    from phototagger.decision import Decision
    from phototagger.scan.decode import Decoded
    from phototagger.scan.infer import Answer
    from phototagger.tags import TagRequest


@dataclass
class ScanItem:
    """One file this scan decodes and predicts."""

    #: plan: the file, as the walk saw it, and why it is predicted.
    work: Work
    #: decode: its facts, hash and tags, or why it could not be decoded.
    decoded: Decoded | None = None
    #: infer: the network's answer (None where decoding failed).
    answer: Answer | None = None
    #: decide: the policy's outcome for it.
    decision: Decision | None = None
    #: record: its row in the index, and the tags the write stage is to write (if any).
    photo_id: int | None = None
    request: TagRequest | None = None

    @property
    def path(self) -> str:
        return self.work.path
