"""``compare``: one table of every evaluated model, written into docs/models.md.

The table sits between two marker comments so the hand-written explanation around it survives
re-running the command. Speed is measured here, now, through ``LandmarkModel`` (what ``scan``
runs), on a preprocessed batch, so decoding is not counted.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from phototagger.errors import ConfigError
from phototagger.model import LandmarkModel

BEGIN, END = "<!-- compare:begin -->", "<!-- compare:end -->"


def images_per_second(model: LandmarkModel, batch_size: int = 32, repeats: int = 5) -> float:
    size = model.preprocess.input_size
    batch = torch.randn(batch_size, 3, size, size)
    model.probabilities(batch)  # warm-up: TorchScript optimises on the first calls
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        model.probabilities(batch)
        best = min(best, time.perf_counter() - started)
    return batch_size / best


def parameter_count(path: Path) -> int:
    """Counted in the file as saved: the loaded, frozen network holds its weights as constants."""
    return sum(p.numel() for p in torch.jit.load(str(path), map_location="cpu").parameters())


def describe(path: Path) -> dict:
    model = LandmarkModel.load(path, device="cpu")
    metrics, training = model.meta.get("metrics", {}), model.meta.get("training", {})
    if "precision" not in metrics:
        raise ConfigError(f"{path} has not been evaluated yet: run evaluate on it first")
    return {
        "file": path.stem, "name": model.name, "architecture": model.architecture,
        "input": model.preprocess.input_size,
        "top1": metrics["val_top1"], "top5": metrics["val_top5"], "ece": metrics["ece"],
        "threshold": model.threshold, "precision": metrics["precision"],
        "coverage": metrics["coverage"], "negatives_tagged": metrics["negatives_tagged"],
        "params": parameter_count(path),
        "megabytes": path.stat().st_size / 1e6,
        "images_per_second": images_per_second(model),
        "train_minutes": training.get("seconds", 0) / 60,
        "epochs": training.get("epochs"),
    }


def table(rows: list[dict]) -> str:
    head = ("| model file | architecture | input | val top-1 | val top-5 | ECE | threshold |"
            " precision | coverage | negatives tagged | params | size | images/s | training |\n"
            + "| --- " * 14 + "|\n")
    lines = [
        f"| {r['file']} | {r['architecture']} | {r['input']} px | {r['top1']:.1%} |"
        f" {r['top5']:.1%} | {r['ece']:.3f} |"
        f" {r['threshold']:.2f} | {r['precision']:.1%} | {r['coverage']:.1%} |"
        f" {r['negatives_tagged']:.1%} | {r['params'] / 1e6:.2f} M | {r['megabytes']:.1f} MB |"
        f" {r['images_per_second']:.0f} | {r['epochs']} epochs, {r['train_minutes']:.0f} min |"
        for r in rows
    ]
    return head + "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    from training.plots import plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        ax.scatter(r["images_per_second"], r["top1"], s=20 + r["megabytes"] * 5)
        ax.annotate(r["file"], (r["images_per_second"], r["top1"]), fontsize=8)
    ax.set_xlabel("images/s on this machine (batch 32, CPU)")
    ax.set_ylabel("validation top-1")
    ax.set_title("accuracy against speed (marker size: file size)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def compare(paths: list[Path], out: Path = Path("docs/models.md")) -> str:
    """Measure every model, write the table (and a plot beside ``out``); return the table."""
    rows = sorted((describe(Path(p)) for p in paths), key=lambda r: -r["top1"])
    text = table(rows)
    plot(rows, out.parent / "plots" / "compare.png")
    block = f"{BEGIN}\n{text}\n![accuracy against speed](plots/compare.png)\n{END}"
    document = out.read_text() if out.is_file() else "# Models\n\n"
    if BEGIN in document and END in document:
        before, rest = document.split(BEGIN, 1)
        document = before + block + rest.split(END, 1)[1]
    else:
        document = document.rstrip() + "\n\n" + block + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(document)
    return text
