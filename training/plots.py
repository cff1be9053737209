"""The evaluation's pictures: confusion matrix, reliability diagram, precision/coverage curve."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def confusion(matrix: list[list[int]], slugs: list[str], path: Path, title: str) -> None:
    size = max(6, len(slugs) * 0.22)
    fig, ax = plt.subplots(figsize=(size, size))
    rows = [[v / max(1, sum(row)) for v in row] for row in matrix]
    ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(slugs)), slugs, rotation=90, fontsize=6)
    ax.set_yticks(range(len(slugs)), slugs, fontsize=6)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}: confusion (row-normalised)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def reliability(report: dict, path: Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfect")
    for key, label in (("reliability_uncalibrated", f"raw (ECE {report['ece_uncalibrated']:.3f})"),
                       ("reliability", f"T={report['temperature']:.2f} (ECE {report['ece']:.3f})")):
        bins = report[key]
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o",
                label=label)
    ax.set_xlabel("confidence (top-1 probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{title}: reliability")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def precision_coverage(report: dict, path: Path, title: str) -> None:
    curve = report["curve"]
    thresholds = [row["threshold"] for row in curve]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key in ("precision", "coverage", "recall", "negatives_tagged"):
        ax.plot(thresholds, [row[key] for row in curve], label=key.replace("_", " "))
    ax.axvline(report["threshold"], color="black", linestyle=":",
               label=f"default threshold {report['threshold']:.2f}")
    ax.set_xlabel("confidence threshold")
    ax.set_ylim(0, 1.01)
    ax.set_title(f"{title}: tagging vs threshold")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_all(report: dict, slugs: list[str], folder: Path, title: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    confusion(report["confusion"], slugs, folder / "confusion.png", title)
    reliability(report, folder / "reliability.png", title)
    precision_coverage(report, folder / "precision_coverage.png", title)
