"""How long does ``phototagger similar`` take on a large index, as a command?

Prints figures; never passes or fails. Run from the repository root:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/similar.py [--photos 100000] [--photo FILE]

Builds the synthetic SQLite index of benchmarks/redecide.py (``--photos`` photos, five
predictions and a random unit embedding each), then runs ``phototagger similar`` as a
command, in a fresh process each time (the interpreter's start and imports included): for an
indexed photo (its stored embedding), and with ``--photo`` for a file the index does not know
(decoded and embedded by the shipped model).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from redecide import build

from phototagger import config
from phototagger.index import Library
from phototagger.model import LandmarkModel

RUNS = 5


def timed(command: list[str]) -> tuple[float, str]:
    """The median wall time of ``command`` over RUNS runs, and its last output."""
    times, out = [], None
    for _ in range(RUNS):
        started = time.perf_counter()
        out = subprocess.run(command, capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times), out.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=100_000)
    parser.add_argument("--photo", type=Path, help="an image the index does not know")
    args = parser.parse_args()
    model = LandmarkModel.load(config.DEFAULT_MODEL, "cpu")
    folder = Path(tempfile.mkdtemp(prefix="similar-"))
    url = f"sqlite:///{folder / 'index.sqlite3'}"
    started = time.perf_counter()
    build(Library(url), model, args.photos, np.random.default_rng(0))
    print(f"built an index of {args.photos:,} photos in {time.perf_counter() - started:.1f} s")
    phototagger = [sys.executable, "-m", "phototagger.cli"]
    seconds, _ = timed([*phototagger, "--version"])
    print(f"`phototagger --version` (the interpreter and click): {seconds:.2f} s")
    seconds, out = timed([*phototagger, "similar", "/library/0/1.jpg", "--db", url])
    print(f"`phototagger similar` of an indexed photo, 10 best of {args.photos:,}: "
          f"{seconds:.2f} s (median of {RUNS})")
    print("  best: " + out.splitlines()[0])
    if args.photo:
        seconds, out = timed([*phototagger, "similar", str(args.photo), "--db", url])
        print(f"`phototagger similar` of a file the index does not know: {seconds:.2f} s "
              f"(median of {RUNS}; loads torch and the model, decodes and embeds it)")


if __name__ == "__main__":
    main()
