"""How fast does ``phototagger scan`` go, against a naive baseline measured in the same process?

Prints figures and ratios; never passes or fails. Run from the repository root:

    .venv/bin/python benchmarks/scan_throughput.py            # ~200 12 MP JPEGs
    .venv/bin/python benchmarks/scan_throughput.py --images 50 --rescan-files 2000

What it measures, on one folder of 12-megapixel JPEGs made here (real landmark photos upscaled,
with grain added so they compress like camera files, 3-5 MB each):
- decode floor: phototagger's own DataLoader decoding (draft + resize) with no model at all;
- naive baseline: full Pillow decode, one image at a time, the eager network, batch of one;
- model alone: the loaded (frozen) network on preprocessed batches, no decoding;
- phototagger scan: the whole pipeline (walk, hash, decode, batched TorchScript, index, tags);
- the same scan with ``--write none``: the index only, so the cost of writing tags shows
  (both scans run ``--repeats`` times, alternated: the median is printed, with the range);
- with ``--compare-model FILE`` (say, the model file before reference photos were added):
  index-only scans with that model and with ``--model``, alternated, and their ratio: what
  the evidence costs the scan (index-only, since a stricter model writes fewer tags);
- rescan: a library of N unchanged files already in the index, scanned again;
- peak memory of the scan: this process and its decoding workers together (PSS).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from phototagger import config
from phototagger.index import Library
from phototagger.index import tables as orm
from phototagger.memory import retain_freed_memory
from phototagger.model import LandmarkModel
from phototagger.scan.dataset import make_loader
from phototagger.scan.pipeline import Scanner, ScanOptions

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "landmarks" / "train"


def make_photos(folder: Path, count: int, size=(4000, 3000)) -> list[Path]:
    """``count`` camera-sized JPEGs, from the shared landmark photos when present.

    Made on every core this process may use (at most 16: each process holds ~0.4 GB while it
    makes one): a GPU machine's benchmark wants a thousand or more, at ~0.5 s each.
    """
    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted(SHARED.rglob("*.jpg"))[:: max(1, 6589 // count)] if SHARED.is_dir() else []
    jobs = [(index, sources[index % len(sources)] if sources else None,
             folder / f"IMG_{index:04d}.jpg", size) for index in range(count)]
    with ProcessPoolExecutor(max(1, min(len(os.sched_getaffinity(0)), count, 16))) as pool:
        return list(pool.map(_make_photo, jobs, chunksize=4))


@functools.cache
def _grain(size: tuple[int, int]) -> np.ndarray:
    """Sensor-like noise, so the JPEGs compress like camera files (one draw per process)."""
    return np.random.default_rng(0).normal(0, 6, (size[1], size[0], 3)).astype(np.int16)


def _make_photo(job: tuple[int, Path | None, Path, tuple[int, int]]) -> Path:
    index, source, path, size = job
    if source is not None:
        base = Image.open(source).convert("RGB")
    else:
        base = Image.linear_gradient("L").convert("RGB").rotate(index * 7)
    big = np.asarray(base.resize(size, Image.BICUBIC), dtype=np.int16)
    shifted = np.roll(_grain(size), index * 97, axis=1)
    Image.fromarray(np.clip(big + shifted, 0, 255).astype(np.uint8)).save(path, "JPEG",
                                                                          quality=92)
    return path


def eager_network(model: LandmarkModel) -> torch.nn.Module:
    """The architecture as plain PyTorch with the model file's weights (TorchScript if unknown)."""
    try:
        from training import nets

        network = nets.build(model.architecture, len(model.classes), pretrained=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript: the shipped format
            weights = torch.jit.load(str(model.path), map_location="cpu").state_dict()
        network.load_state_dict(weights)  # from the file: the loaded module is frozen
        return network.eval().to(model.device)
    except Exception as error:  # the training extra is missing or the architecture is unknown
        print(f"  (eager network unavailable: {str(error)[:200]}; baseline uses TorchScript)")
        return model.module


def naive_input(image: Image.Image, spec) -> torch.Tensor:
    """What a first version would write: Pillow resize and crop, numpy normalisation."""
    scale = spec.resize / min(image.size)
    size = (max(spec.resize, round(image.width * scale)),
            max(spec.resize, round(image.height * scale)))
    image = image.resize(size, Image.BILINEAR)
    left, top = (size[0] - spec.input_size) // 2, (size[1] - spec.input_size) // 2
    image = image.crop((left, top, left + spec.input_size, top + spec.input_size))
    array = (np.asarray(image, dtype=np.float32) / 255 - spec.mean) / spec.std
    return torch.from_numpy(array.astype(np.float32)).permute(2, 0, 1)


def naive_baseline(model: LandmarkModel, paths: list[Path]) -> float:
    network = eager_network(model)
    started = time.perf_counter()
    with torch.inference_mode():
        for path in paths:
            image = ImageOps.exif_transpose(Image.open(path)).convert("RGB")  # full decode
            output = network(naive_input(image, model.preprocess).unsqueeze(0).to(model.device))
            logits = output[0] if isinstance(output, tuple) else output  # format 2: and evidence
            torch.softmax(logits / model.temperature, dim=-1).cpu()
    return time.perf_counter() - started


def model_alone(model: LandmarkModel, batch: int, repeats: int = 5) -> float:
    """images/s of the network by itself, on preprocessed random batches (no decoding)."""
    size = model.preprocess.input_size
    inputs = torch.randn(batch, 3, size, size)
    model.probabilities(inputs)  # load, freeze and warm up
    started = time.perf_counter()
    for _ in range(repeats):
        model.probabilities(inputs)
    return batch * repeats / (time.perf_counter() - started)


def decode_floor(model: LandmarkModel, paths: list[Path], workers: int, batch: int) -> float:
    loader = make_loader([str(p) for p in paths], model.preprocess, batch, workers)
    started = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - started


def full_scan(model: LandmarkModel, folder: Path, workers: int, batch: int,
              write: str = "embed", index: str = "") -> tuple[float, dict]:
    """A first scan of ``folder`` into a new index; every photo is tagged (threshold 0)."""
    library = Library(f"sqlite:///{folder.parent / f'scan-{write}{index}.sqlite3'}")
    options = ScanOptions(batch_size=batch, workers=workers, threshold=0.0, write=write)
    started = time.perf_counter()
    summary = Scanner(library, model, options).run([folder])
    return time.perf_counter() - started, summary.to_dict()


def rescan(model: LandmarkModel, folder: Path, count: int) -> tuple[float, float, dict]:
    """Time a scan of ``count`` files the index knows unchanged: in process, and as a command."""
    folder.mkdir(parents=True, exist_ok=True)
    small = Image.new("RGB", (8, 8), (120, 60, 30))
    for index in range(count):
        subfolder = folder / f"{index // 500:03d}"
        subfolder.mkdir(exist_ok=True)
        small.save(subfolder / f"IMG_{index:05d}.jpg", "JPEG")
    library = Library(f"sqlite:///{folder.parent / 'rescan.sqlite3'}")
    now = datetime.now(UTC)
    with library.session() as session:  # what a first scan would have left in the index
        model_row = library.ensure_model(session, model)
        library.add_roots(session, [folder])
        slug = model.classes[0].slug
        for path in sorted(folder.rglob("*.jpg")):
            info = path.stat()
            # A guess the model's policy tags, or the rescan would re-decide every photo.
            photo = orm.Photo(path=str(path), size=info.st_size, mtime_ns=info.st_mtime_ns,
                              status="ok", landmark_slug=slug, confidence=0.999,
                              tag_state="auto", decision="verified", first_seen=now,
                              last_seen=now)
            photo.predictions.append(orm.Prediction(model_pk=model_row.id, rank=0, slug=slug,
                                                    probability=0.999, similarity=0.8,
                                                    ordinary=0.4))
            photo.writes.append(orm.Write(target=str(path), mode="embed", slug=slug))
            session.add(photo)
        session.commit()
    started = time.perf_counter()
    summary = Scanner(library, model, ScanOptions(workers=0)).run([folder])
    in_process = time.perf_counter() - started
    command = [sys.executable, "-m", "phototagger.cli", "scan", str(folder), "--quiet",
               "--model", str(model.path), "--db", library.url]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return in_process, time.perf_counter() - started, summary.to_dict()


class PeakMemory:
    """Peak memory of this process and its decoding workers together, sampled (Linux).

    Proportional set size: a page shared by the forked workers (torch, the model) is counted
    once across them, so the sum is what the scan really takes from the machine.
    """

    def __init__(self, interval: float = 0.25):
        self.interval = interval
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            pids = [os.getpid(), *_children(os.getpid())]
            self.peak_mb = max(self.peak_mb, sum(_pss_kb(pid) for pid in pids) / 1024)


def _children(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as handle:
            found += [int(child) for child in handle.read().split()]
    return found


def _pss_kb(pid: int) -> int:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/smaps_rollup") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("Pss:"))
    return 0


def _spread(rates: list[float]) -> str:
    if len(rates) < 2:
        return ""
    return f"median of {len(rates)}: {min(rates):.1f}-{max(rates):.1f}"


def compare_models(model: LandmarkModel, other: LandmarkModel, folder: Path, args,
                   rates: list[float]) -> None:
    """Index-only scans with ``other``, alternated with more of ``model``'s."""
    count = len(list(folder.glob("*.jpg")))
    mine, theirs = list(rates), []
    for repeat in range(args.repeats):
        seconds, _ = full_scan(other, folder, args.workers, args.batch_size, write="none",
                               index=f"-other-{repeat}")
        theirs.append(count / seconds)
        seconds, _ = full_scan(model, folder, args.workers, args.batch_size, write="none",
                               index=f"-again-{repeat}")
        mine.append(count / seconds)
    ours, other_rate = statistics.median(mine), statistics.median(theirs)
    print(f"index-only scans: {model.model_id} {ours:.1f} images/s {_spread(mine)}, "
          f"{other.model_id} {other_rate:.1f} images/s {_spread(theirs)}: "
          f"ratio {ours / other_rate:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--baseline-images", type=int, default=40,
                        help="the naive baseline is slow: time it on the first N photos")
    parser.add_argument("--rescan-files", type=int, default=10_000)
    parser.add_argument("--model", type=Path, default=config.DEFAULT_MODEL)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--repeats", type=int, default=3,
                        help="scans of each kind: a shared machine's speed drifts, the median "
                             "and the range tell more than one run")
    parser.add_argument("--compare-model", type=Path,
                        help="also time index-only scans with this model file, alternated with "
                             "--model's, and print the ratio")
    parser.add_argument("--keep", action="store_true", help="keep the generated folder")
    parser.add_argument("--photos", type=Path,
                        help="copy the first --images JPEGs of this folder (say, a kept "
                             "photos/, whose tags the scans then replace) instead of making new "
                             "ones")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    model = LandmarkModel.load(args.model, args.device)
    work = Path(tempfile.mkdtemp(prefix="phototagger-bench-"))
    try:
        print(f"model: {model.model_id} ({model.architecture}, {model.preprocess.input_size} px)"
              f" on {model.device}; torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}")
        started = time.perf_counter()
        if args.photos:
            (work / "photos").mkdir()
            for source in sorted(args.photos.glob("*.jpg"))[: args.images]:
                shutil.copy2(source, work / "photos")
            paths = sorted((work / "photos").glob("*.jpg"))
            if not paths:
                parser.error(f"no JPEGs in {args.photos}")
        else:
            paths = make_photos(work / "photos", args.images)
        mean_mb = sum(p.stat().st_size for p in paths) / len(paths) / 1e6
        print(f"{len(paths)} JPEGs ({mean_mb:.1f} MB each) ready "
              f"in {time.perf_counter() - started:.0f} s")

        baseline_paths = paths[: args.baseline_images]
        baseline = naive_baseline(model, baseline_paths)
        # From here on, the allocator settings the scan itself uses (the baseline is naive).
        retain_freed_memory()
        floor = decode_floor(model, paths, args.workers, args.batch_size)
        network_rate = model_alone(model, args.batch_size)
        no_tags_rates, scan_rates = [], []
        for repeat in range(args.repeats):  # alternated, so a slow spell hits both kinds
            seconds, _ = full_scan(model, work / "photos", args.workers, args.batch_size,
                                   write="none", index=f"-{repeat}")
            no_tags_rates.append(len(paths) / seconds)
            seconds, summary = full_scan(model, work / "photos", args.workers, args.batch_size,
                                         index=f"-{repeat}")
            scan_rates.append(len(paths) / seconds)
        # Memory from a scan of its own: sampling it costs CPU (~13 ms a process a sample),
        # which would slow the timed scans. A new index, so the photos are all tagged again.
        with PeakMemory() as memory:
            full_scan(model, work / "photos", args.workers, args.batch_size, index="-memory")
        no_tags_rate, scan_rate = statistics.median(no_tags_rates), statistics.median(scan_rates)
        floor_rate = len(paths) / floor
        baseline_rate = len(baseline_paths) / baseline
        print()
        print(f"{'measure':44s} {'images/s':>9s} {'vs naive':>9s}")
        print(f"{'naive baseline (full decode, batch 1, eager)':44s} {baseline_rate:9.1f} {1:9.2f}")
        print(f"{'decode floor (DataLoader, draft, no model)':44s} {floor_rate:9.1f} "
              f"{floor_rate / baseline_rate:9.2f}")
        print(f"{'model alone (batched, no decoding)':44s} {network_rate:9.1f} "
              f"{network_rate / baseline_rate:9.2f}")
        print(f"{'phototagger scan --write none (index only)':44s} {no_tags_rate:9.1f} "
              f"{no_tags_rate / baseline_rate:9.2f}  {_spread(no_tags_rates)}")
        print(f"{'phototagger scan (end to end, tags written)':44s} {scan_rate:9.1f} "
              f"{scan_rate / baseline_rate:9.2f}  {_spread(scan_rates)}")
        print(f"scan reached {scan_rate / floor_rate:.0%} of the decode floor; "
              f"tagged {summary['tagged']}, failed {len(summary['failed'])}")
        if model.device.type == "cpu":
            # Decoding and the network take turns on the same cores: at best their times add.
            ideal = 1 / (1 / floor_rate + 1 / network_rate)
            print(f"decoding and the network alone, sharing these cores without loss: "
                  f"{ideal:.1f} images/s; the scan reached {scan_rate / ideal:.0%} of that")

        print(f"peak memory of the scan, main process and workers together (PSS): "
              f"{memory.peak_mb:.0f} MB")
        if args.compare_model:
            compare_models(model, LandmarkModel.load(args.compare_model, args.device),
                           work / "photos", args, no_tags_rates)
        if args.rescan_files:
            seconds, command, summary = rescan(model, work / "library", args.rescan_files)
            print(f"rescan of {summary['unchanged']} unchanged files: {seconds:.2f} s in process "
                  f"({summary['unchanged'] / seconds:,.0f} files/s), {command:.2f} s as a "
                  "command (interpreter, torch import and model load included)")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
