"""What the About page says about a model, read from its own metadata (missing keys tolerated)."""

from __future__ import annotations

from dataclasses import dataclass, field

from phototagger.landmarks import FARTHEST_VIEW_KM
from phototagger.model import LandmarkModel

#: The metrics evaluation writes that a person can read, in the page's order; True: a share
#: shown as a percentage. Other keys (nll, settings) stay out of the page.
METRIC_LABELS = {
    "val_top1": ("Validation accuracy (top 1)", True),
    "val_top5": ("Validation accuracy (top 5)", True),
    "test_top1": ("Test accuracy (top 1)", True),
    "test_top5": ("Test accuracy (top 5)", True),
    "precision": ("Tags that are right, at the threshold (precision)", True),
    "coverage": ("Landmark photos that get a tag (coverage)", True),
    "negatives_tagged": ("Photos of no landmark above the threshold (before the evidence)", True),
    "ece": ("Calibration error (ECE, lower is better)", False),
    "ece_uncalibrated": ("Calibration error before temperature scaling", False),
    "val_images": ("Validation photos", False),
    "negatives": ("Photos of no landmark measured", False),
}
#: The open-set figures (``metrics.open_set``, written by ``python -m training openset``): what
#: a real library, mostly photos of no known landmark, can expect.
OPEN_SET_LABELS = {
    "known_tagged_right": ("Photos of its landmarks tagged right", True),
    "known_precision": ("Tags on photos of its landmarks that are right", True),
    "ordinary_tagged": ("Ordinary photos of kinds it never saw that get a tag", True),
    "unknown_tagged": ("Photos of landmarks it does not know that get a tag", True),
    "mix_precision": ("Tags that are right on a library of 90 % ordinary photos, 5 % other "
                      "landmarks, 5 % its own", True),
}
#: The training facts worth a sentence; the rest of ``meta["training"]`` goes under "details".
TRAINING_LABELS = {
    "data": "Photos from",
    "images": "Photos",
    "train_images": "Used for training",
    "val_images": "Held out for measuring",
    "epochs": "Epochs",
    "seconds": "Training time (seconds)",
}
_PER_CLASS_SCORES = ("top1", "accuracy", "recall", "f1")
#: Landmarks that stand in one place and look alike: confusions between them are expected.
QUTB_COMPLEX = ("qutb-minar", "alai-minar", "alai-darwaza", "iron-pillar")
NATURAL_SCENES = ("ha-long-bay", "sa-pa-rice-terraces", "haleakala-national-park", "angel-falls")


@dataclass
class Metric:
    key: str
    label: str
    value: float
    percent: bool


@dataclass
class ModelFacts:
    name: str
    version: str
    architecture: str
    model_id: str
    threshold: float
    input_size: int
    landmarks: list[dict]
    metrics: list[Metric]
    open_set: list[Metric]
    #: The held-out kinds of ordinary photo and the share of each that got a tag.
    open_set_kinds: list[tuple[str, float]]
    training: dict
    training_details: dict
    weakest: list[tuple[str, float]] = field(default_factory=list)
    qutb_complex: list[str] = field(default_factory=list)
    natural_scenes: list[str] = field(default_factory=list)
    fewest_images: list[tuple[str, int]] = field(default_factory=list)
    farthest_view_km: int = int(FARTHEST_VIEW_KM)  # the scan's rule, shown beside the threshold


def model_facts(model: LandmarkModel) -> ModelFacts:
    """Everything the About page shows; a model without measurements still gets a page."""
    meta = model.meta
    metrics = meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {}
    training = meta.get("training") if isinstance(meta.get("training"), dict) else {}
    images = training.get("per_class") if isinstance(training.get("per_class"), dict) else {}
    names = {lm.slug: lm.name for lm in model.classes}
    landmarks = [
        {"landmark": lm, "training_images": images.get(lm.slug)}
        for lm in sorted(model.classes, key=lambda lm: lm.name.casefold())
    ]
    return ModelFacts(
        name=model.name,
        version=model.version,
        architecture=model.architecture,
        model_id=model.model_id,
        threshold=model.threshold,
        input_size=model.preprocess.input_size,
        landmarks=landmarks,
        metrics=_metrics(metrics, METRIC_LABELS),
        open_set=_metrics(_open_set(metrics), OPEN_SET_LABELS),
        open_set_kinds=sorted(
            ((kind.replace("_", " "), float(rate))
             for kind, rate in (_open_set(metrics).get("ordinary_tagged_per_kind") or {}).items()
             if isinstance(rate, (int, float))),
            key=lambda item: -item[1],
        ),
        training={
            label: training[key] for key, label in TRAINING_LABELS.items() if key in training
        },
        training_details={
            key: value for key, value in training.items()
            if key not in TRAINING_LABELS and isinstance(value, (str, int, float))
        },
        weakest=[(names.get(slug, slug), score) for slug, score in _weakest(metrics)],
        qutb_complex=[names[slug] for slug in QUTB_COMPLEX if slug in names],
        natural_scenes=[names[slug] for slug in NATURAL_SCENES if slug in names],
        fewest_images=sorted(
            ((names[slug], count) for slug, count in images.items()
             if slug in names and isinstance(count, int)),
            key=lambda item: item[1],
        )[:5],
    )


def _open_set(metrics: dict) -> dict:
    found = metrics.get("open_set")
    return found if isinstance(found, dict) else {}


def _metrics(metrics: dict, labels: dict[str, tuple[str, bool]]) -> list[Metric]:
    shown = []
    for key, (label, percent) in labels.items():
        value = metrics.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        shown.append(Metric(key, label, float(value), percent and 0 <= value <= 1))
    return shown


def _weakest(metrics: dict, count: int = 8) -> list[tuple[str, float]]:
    """The classes with the lowest per-class score, when evaluation measured them."""
    per_class = metrics.get("per_class")
    if not isinstance(per_class, dict):
        return []
    scores = []
    for slug, entry in per_class.items():
        if isinstance(entry, dict):
            entry = next((entry[k] for k in _PER_CLASS_SCORES if k in entry), None)
        if isinstance(entry, (int, float)) and not isinstance(entry, bool):
            scores.append((slug, float(entry)))
    return sorted(scores, key=lambda item: item[1])[:count]
