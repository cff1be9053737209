"""Evaluate a model file as ``scan`` would use it; calibrate it; draw the plots.

Photos go through ``phototagger.imaging.load_input`` and the network through
``phototagger.model.LandmarkModel``, so the numbers are those of the shipped product. The
validation split is rebuilt from the seed and fraction stored in the model file (and checked
against its digest). The temperature is fitted and the threshold chosen on that split and the
negatives, then written back into the model file.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from phototagger.errors import ConfigError
from phototagger.model import LandmarkModel, read_meta, save_model_file
from training import calibrate
from training.data import (
    input_batches,
    list_images,
    negative_split,
    scan_folder,
    split_digest,
    stratified_split,
)


def logits_of(model: LandmarkModel, paths: list[Path], batch_size: int = 32,
              desc: str = "images") -> tuple[torch.Tensor, list[int]]:
    """Raw logits of the photos that decode (and the indices of those that do)."""
    rows, kept = [], []
    for batch, indices, _ in input_batches(paths, model.preprocess, batch_size, desc):
        rows.append(model.scores(batch).logits)
        kept += indices
    width = len(model.classes)
    return (torch.cat(rows) if rows else torch.zeros(0, width)), kept


def evaluation_samples(model: LandmarkModel, data: Path, split: str,
                       gazetteer: Path | None = None) -> list[tuple[Path, int]]:
    """The labelled photos to evaluate on: the model's own validation split, or all of ``data``."""
    train, val = split_samples(model, data, gazetteer, whole=split == "all")
    return train if split == "all" else val


def split_samples(model: LandmarkModel, data: Path, gazetteer: Path | None = None,
                  whole: bool = False) -> tuple[list[tuple[Path, int]], list[tuple[Path, int]]]:
    """The model's training and validation photos (labelled with its class indices), rebuilt
    from the seed its file records; with ``whole``, every photo of ``data`` and no split."""
    dataset = scan_folder(data, gazetteer)
    slugs = [landmark.slug for landmark in model.classes]
    unknown = [c.slug for c in dataset.classes if c.slug not in slugs]
    if unknown:
        raise ConfigError(f"{data} has landmarks the model does not know: {', '.join(unknown)}")
    relabel = [slugs.index(c.slug) for c in dataset.classes]

    def labelled(chosen):
        return [(path, relabel[label]) for path, label in chosen]

    if whole:
        return labelled(dataset.samples), []
    training = model.meta.get("training", {})
    if "split_seed" not in training:
        raise ConfigError("the model file records no validation split: use --split all")
    samples = dataset.samples
    if training.get("limit_per_class"):
        limit = training["limit_per_class"]
        samples = [s for label in range(len(dataset.classes))
                   for s in [s for s in dataset.samples if s[1] == label][:limit]]
    train, val = stratified_split(samples, training["val_fraction"], training["split_seed"])
    if training.get("split_digest") not in (None, split_digest(samples, val, dataset.root)):
        raise ConfigError(f"{data} is not the data this model was trained on (split differs)")
    return labelled(samples[i] for i in train), labelled(samples[i] for i in val)


def held_out_negatives(model: LandmarkModel, negatives: Path) -> list[Path]:
    """The negatives to count false tags on: those the model did not see in training.

    Exactly the held-out part of the kinds the model file records (those its training and its
    reference photos were split from): kinds of photo added to the folder since are not
    counted here (the open-set evaluation holds kinds out whole).
    """
    if model.meta.get("training", {}).get("negatives_held_out"):
        return [path for _, held in negative_split(model.meta, negatives).values()
                for path in held]
    return list_images(negatives)


def summarise(logits: torch.Tensor, labels: torch.Tensor, negative_logits: torch.Tensor,
              slugs: list[str], min_precision: float = 0.97) -> dict:
    """Every number the evaluation reports, from raw logits: pure, so tests can check it by hand."""
    temperature = calibrate.fit_temperature(logits, labels) if len(labels) > 1 else 1.0
    probs = torch.softmax(logits / temperature, -1)
    negative_probs = torch.softmax(negative_logits / temperature, -1)
    k = min(5, logits.shape[-1])
    top1 = (logits.argmax(-1) == labels).float()
    top5 = (logits.topk(k, -1).indices == labels[:, None]).any(-1).float()
    curve = calibrate.precision_coverage(probs, labels, negative_probs)
    chosen = calibrate.choose_threshold(curve, min_precision)
    confusion = torch.zeros(len(slugs), len(slugs), dtype=torch.long)
    confusion.index_put_((labels, logits.argmax(-1)), torch.ones_like(labels), accumulate=True)
    raw = calibrate.reliability(torch.softmax(logits, -1), labels)
    per_class = {slug: (confusion[i, i] / confusion[i].sum()).item()
                 for i, slug in enumerate(slugs) if confusion[i].sum() > 0}
    return {
        "val_images": len(labels), "negatives": len(negative_logits),
        "val_top1": top1.mean().item(), "val_top5": top5.mean().item(),
        "nll": torch.nn.functional.cross_entropy(logits / temperature, labels).item(),
        "ece": calibrate.reliability(probs, labels)["ece"],
        "ece_uncalibrated": raw["ece"],
        "temperature": temperature, "threshold": chosen["threshold"],
        "min_precision": min_precision, "precision": chosen["precision"],
        "coverage": chosen["coverage"], "recall": chosen["recall"],
        "negatives_tagged": chosen["negatives_tagged"], "per_class": per_class,
        "curve": curve, "confusion": confusion.tolist(),
        "reliability": calibrate.reliability(probs, labels)["bins"],
        "reliability_uncalibrated": raw["bins"],
    }


def evaluate(model_path: str | Path, data: str | Path, negatives: str | Path | None = None,
             split: str = "val", gazetteer: Path | None = None, plots: Path | None = None,
             write: bool = True, min_precision: float = 0.97, batch_size: int = 32) -> dict:
    """Measure, calibrate and (with ``write``) store temperature, threshold and metrics."""
    model = LandmarkModel.load(model_path, device="cpu")
    samples = evaluation_samples(model, Path(data), split, gazetteer)
    if not samples:
        raise ConfigError(f"no photos to evaluate in {data}")
    logits, kept = logits_of(model, [p for p, _ in samples], batch_size, "landmark photos")
    labels = torch.tensor([samples[i][1] for i in kept])
    negative_paths = held_out_negatives(model, Path(negatives)) if negatives else []
    negative_logits, _ = logits_of(model, negative_paths, batch_size, "negatives")
    slugs = [landmark.slug for landmark in model.classes]
    report = summarise(logits, labels, negative_logits, slugs, min_precision)
    report["split"] = split
    if plots:
        from training.plots import draw_all

        draw_all(report, slugs, Path(plots), model.name)
        (Path(plots) / "evaluation.json").write_text(json.dumps(report, indent=1))
    if write:
        store(model_path, report)
    return report


def store(model_path: str | Path, report: dict) -> None:
    """Write temperature, threshold and the headline metrics into the model file."""
    meta = read_meta(model_path)
    meta["temperature"] = round(report["temperature"], 5)
    meta["threshold"] = report["threshold"]
    keep = ("val_images", "negatives", "val_top1", "val_top5", "nll", "ece", "ece_uncalibrated",
            "min_precision", "precision", "coverage", "recall", "negatives_tagged", "per_class")
    meta["metrics"] = {**meta.get("metrics", {}), **{key: report[key] for key in keep}}
    module = torch.jit.load(str(model_path), map_location="cpu")
    save_model_file(module, meta, model_path)
