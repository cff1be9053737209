"""What a scan did, counted as it goes: the summary the CLI prints and the index keeps."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

#: One line per failed file, for a log; the summary lists them for people.
failures_log = logging.getLogger("phototagger.scan.failed")


@dataclass
class ScanSummary:
    found: int = 0
    new: int = 0
    changed: int = 0
    moved: int = 0
    unchanged: int = 0
    new_model: int = 0
    #: Unchanged, but the last scan could not write their tags: written again.
    retried: int = 0
    #: Unchanged, but this scan's threshold or write mode wants other tags than recorded.
    new_settings: int = 0
    #: Unchanged, predicted again because the scan was asked to (--force).
    forced: int = 0
    skipped: int = 0
    missing: int = 0
    #: Links out of the scanned folders, not followed (--follow-links): not in the library.
    outside_links: int = 0
    tagged: int = 0
    #: Plausible but not verified by the reference photos: in the index for a person.
    suggested: int = 0
    below_threshold: int = 0
    #: Sure enough by the softmax, but the reference photos speak against it.
    not_similar: int = 0
    #: Sure enough, but the camera's own GPS puts it too far away to show that landmark.
    far_from_camera: int = 0
    #: Sure enough, of an image with next to no detail (imaging.MIN_DETAIL): no evidence.
    featureless: int = 0
    kept_by_person: int = 0
    untagged: int = 0
    predicted: int = 0
    #: Of the GPS-less photos this scan predicted, those given a position estimated from the
    #: library's own GPS (phototagger.location).
    placed_from_library: int = 0
    failed: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    dry_run: bool = False
    #: Stopped on request (request_stop) before all work was done; what was done is recorded.
    interrupted: bool = False

    @property
    def images_per_second(self) -> float:
        return self.predicted / self.seconds if self.seconds else 0.0

    def fail(self, path: str, reason: str) -> None:
        reason = reason.replace(f"{path}: ", "", 1)  # errors name their file; once is enough
        failures_log.warning("%s: %s", path, reason)
        self.failed.append({"path": path, "reason": reason})

    def to_dict(self) -> dict:
        data = asdict(self)
        data["images_per_second"] = round(self.images_per_second, 2)
        data["seconds"] = round(self.seconds, 3)
        return data
