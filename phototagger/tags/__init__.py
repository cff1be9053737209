"""Photo metadata: write, read and undo phototagger's landmark tags (XMP, EXIF GPS, sidecars).

Knows nothing of models or the index: it is told what to write and says what it did.
"""

from phototagger.tags.writer import (
    ReadTags,
    RemoveResult,
    TagRequest,
    WriteResult,
    read_camera_gps,
    read_tags,
    remove_tags,
    write_tags,
)

__all__ = [
    "ReadTags",
    "RemoveResult",
    "TagRequest",
    "WriteResult",
    "read_camera_gps",
    "read_tags",
    "remove_tags",
    "write_tags",
]
