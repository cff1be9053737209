"""The local engine against the Ray engine on one folder, in one process: images/s and ratio.

Prints figures; never passes or fails. Run from the repository root (the ray extra installed):

    .venv/bin/python benchmarks/scan_engines.py                 # 200 12 MP JPEGs
    .venv/bin/python benchmarks/scan_engines.py --images 1000 --ray-actors 1   # a GPU machine

What it measures, on the folder of camera-sized JPEGs ``scan_throughput.py`` makes:
- Ray's start-up: ``ray.init`` of a local cluster on this machine (the engine's own start),
  then a first Ray scan of 16 photos: its worker processes start and import torch;
- each engine's first scan of the folder into a new index, alternated, ``--repeats`` times
  (the median, with the range): ``--write none`` by default, so both do the same work;
  the Ray scans join the cluster started above, so their time includes starting the
  inference actors (loading the model) but not Ray itself or its workers' first start;
- with ``--write none embed``, each engine also scans with tags written into the files (on
  the driver, by the write stage's threads): what the writes cost each engine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from scan_throughput import make_photos  # noqa: E402

from phototagger import config  # noqa: E402
from phototagger.index import Library  # noqa: E402
from phototagger.model import LandmarkModel  # noqa: E402
from phototagger.scan.pipeline import Scanner, ScanOptions  # noqa: E402


def scan(model: LandmarkModel, folder: Path, index: Path, **options) -> tuple[float, dict]:
    library = Library(f"sqlite:///{index}")
    started = time.perf_counter()
    summary = Scanner(library, model, ScanOptions(threshold=0.0, **options)).run([folder])
    return time.perf_counter() - started, summary.to_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=None, help="the local engine's")
    parser.add_argument("--ray-actors", type=int, default=None)
    parser.add_argument("--write", nargs="+", default=["none"], choices=["none", "embed"],
                        help="one mode, or both: each engine scans in each, alternated")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", type=Path, default=config.DEFAULT_MODEL)
    args = parser.parse_args()

    import ray

    model = LandmarkModel.load(args.model, args.device)
    with tempfile.TemporaryDirectory(prefix="phototagger-engines-") as tmp:
        folder = Path(tmp) / "photos"
        make_photos(folder, args.images)
        print(f"{args.images} photos of 4000x3000 in {folder}; {model.model_id} on "
              f"{model.device}; {len(os.sched_getaffinity(0))} cores")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        started = time.perf_counter()
        ray.init(include_dashboard=False, log_to_driver=False)
        print(f"Ray start-up (a local cluster, ray.init): {time.perf_counter() - started:.1f} s;"
              f" resources {ray.cluster_resources()}")
        warm = Path(tmp) / "warm-up"
        warm.mkdir()
        for path in sorted(folder.iterdir())[:16]:
            os.link(path, warm / path.name)
        seconds, _ = scan(model, warm, Path(tmp) / "warm-up.sqlite3", engine="ray",
                          batch_size=args.batch_size, ray_actors=args.ray_actors, write="none")
        print(f"a first Ray scan of 16 photos on the new cluster: {seconds:.1f} s (Ray's worker "
              "processes start and import torch once, the inference actors load the model)")
        runs = [(engine, write) for engine in ("local", "ray") for write in args.write]
        rates: dict[tuple[str, str], list[float]] = {run: [] for run in runs}
        for repeat in range(args.repeats):
            for engine, write in runs:
                name = f"{engine}-{write}-{repeat}"
                target = folder
                if write != "none":  # each writing scan tags photos of its own
                    target = Path(tmp) / name
                    shutil.copytree(folder, target)
                seconds, summary = scan(
                    model, target, Path(tmp) / f"{name}.sqlite3", engine=engine,
                    batch_size=args.batch_size, workers=args.workers,
                    ray_actors=args.ray_actors, write=write)
                assert summary["predicted"] == args.images, summary
                rates[engine, write].append(args.images / seconds)
                print(f"  {engine}, --write {write}: {seconds:.1f} s, "
                      f"{args.images / seconds:.1f} images/s")
        ray.shutdown()
    median = {run: statistics.median(found) for run, found in rates.items()}
    for (engine, write), found in rates.items():
        print(f"--engine {engine} --write {write}: {median[engine, write]:.1f} images/s "
              f"(median of {args.repeats}: {min(found):.1f}-{max(found):.1f})")
    for write in args.write:
        print(f"ratio ray/local, --write {write}: "
              f"{median['ray', write] / median['local', write]:.2f}")
    if len(args.write) == 2:
        for engine in ("local", "ray"):
            print(f"--engine {engine}: writing tags runs at "
                  f"{median[engine, 'embed'] / median[engine, 'none']:.2f}x of index-only")


if __name__ == "__main__":
    main()
