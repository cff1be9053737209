"""What a scan is asked to do: the options every engine and stage reads."""

from __future__ import annotations

from dataclasses import dataclass

#: What can run the decode and infer stages (phototagger.scan.engines).
ENGINES = ("local", "ray")


@dataclass
class ScanOptions:
    batch_size: int = 32
    workers: int | None = None  # decoding processes; None: chosen for the machine and device
    threshold: float | None = None  # None: the model's own recommended threshold
    write: str = "embed"
    dry_run: bool = False
    force: bool = False
    excludes: tuple[str, ...] = ()
    progress: bool = False
    wait: float = 0
    top_k: int = 5
    preserve_mtime: bool = False
    #: Write the landmark's position as an estimated GPS position (False: names only).
    estimate_position: bool = True
    #: Follow links out of the library's folders; what they lead to joins the library.
    follow_links: bool = False
    #: What runs the decode and infer stages: "local" (DataLoader) or "ray" (Ray Data).
    engine: str = "local"
    #: The Ray cluster to join (None: start one on this machine for the scan).
    ray_address: str | None = None
    #: Inference actors on the Ray cluster (None: one per GPU, or one per two CPUs).
    ray_actors: int | None = None
