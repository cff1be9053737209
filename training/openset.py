"""Open-set evaluation: how often photos of no known landmark get tagged, on kinds held out whole.

A model is fitted on some kinds of ordinary photo and a library holds many more, so false tags
are counted only on kinds the reference photos never included: each kind of
``negatives/`` is held out in turn (its photos measured, the other kinds' photos the ordinary
references), and photos of landmarks the model does not know (``--unknown``, from a model
trained without them) are counted as tags too. Every count goes through
:func:`phototagger.decision.decide`, as ``scan`` does.

The operating point is a rule, not a number tuned to one folder: the tag margin keeps a share
``keep`` of the known-landmark photos the model gets right and the tag probability a share
``keep_probability`` of them, and the pair is chosen for precision on a realistic mix of
photos (most of a library shows no landmark).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from phototagger.decision import Evidence, Facts, Outcome, Policy, decide
from phototagger.errors import ConfigError
from phototagger.evidence import class_similarity, ordinary_similarity
from phototagger.model import LandmarkModel, read_meta, save_model_file
from training.data import input_batches, list_images, negative_split
from training.evaluate import split_samples

#: A library as the issue describes it: photos of no landmark, of landmarks the model does
#: not know, and of its own landmarks.
MIX = {"ordinary": 0.90, "unknown": 0.05, "known": 0.05}
#: The shares of correctly recognised known photos the tag margin may keep, and the share the
#: suggestion margin keeps.
KEEPS = (0.995, 0.99, 0.98, 0.97, 0.96, 0.95, 0.94, 0.93, 0.92, 0.9, 0.88, 0.85)
SUGGEST_KEEP = 0.995
#: The shares the tag probability may keep (1.0: the threshold alone).
PROBABILITY_KEEPS = (1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7)
#: The precision on the mix the operating point must reach (the highest ``keep`` that does).
MIN_MIX_PRECISION = 0.9


@dataclass
class Embedded:
    """What the evaluation needs of a list of photos: logits, embeddings, detail."""

    logits: torch.Tensor
    embeddings: torch.Tensor
    detail: list[float]

    def __len__(self) -> int:
        return len(self.detail)


class Embedder:
    """The model file's network, asked for its embedding (the ``embedding`` method)."""

    def __init__(self, model: LandmarkModel):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(model.path), map_location="cpu").eval()
            self.module = torch.jit.freeze(module, preserved_attrs=["embedding"])
        self.model = model
        self.references = module.references.float()
        self.members = module.members
        self.neighbours = int(model.evidence.get("neighbours", 3))

    def __call__(self, paths: list[Path], desc: str) -> Embedded:
        logits, embeddings, detail = [], [], []
        for batch, _, facts in input_batches(paths, self.model.preprocess, desc=desc):
            with torch.inference_mode():
                for chunk in batch.split(4):
                    out = self.module.embedding(chunk)
                    logits.append(out[0].float())
                    embeddings.append(out[1].float())
            detail += [fact.detail for fact in facts]
        if not detail:
            return Embedded(torch.zeros(0, len(self.model.classes)), torch.zeros(0, 1), [])
        return Embedded(torch.cat(logits), torch.cat(embeddings), detail)


def evidence_of(model: LandmarkModel, embedder: Embedder, photos: Embedded,
                ordinary: torch.Tensor) -> list[Evidence]:
    """Each photo's best guess with its evidence, against these ordinary reference photos."""
    if not len(photos):
        return []
    probabilities = torch.softmax(photos.logits / model.temperature, -1)
    confidence, best = probabilities.max(-1)
    similarity = class_similarity(photos.embeddings, embedder.references, embedder.members,
                                  embedder.neighbours)
    against = ordinary_similarity(photos.embeddings, ordinary, embedder.neighbours)
    return [
        Evidence(model.classes[b], float(p), float(similarity[i, b]), float(against[i]))
        for i, (p, b) in enumerate(zip(confidence.tolist(), best.tolist(), strict=True))
    ]


def outcomes(evidence: list[Evidence], photos: Embedded, policy: Policy) -> list[Outcome]:
    return [decide(e, Facts(detail=d), policy).outcome
            for e, d in zip(evidence, photos.detail, strict=True)]


def auroc(positives: list[float], negatives: list[float]) -> float:
    """The chance that a random positive scores above a random negative (ties count half)."""
    if not positives or not negatives:
        return float("nan")
    pos, neg = torch.tensor(positives), torch.tensor(negatives)
    above = (pos[:, None] > neg[None, :]).float().mean()
    ties = (pos[:, None] == neg[None, :]).float().mean()
    return float(above + ties / 2)


def evaluate_openset(model_path: str | Path, data: Path, negatives: Path,
                     unknown: Path | None = None, gazetteer: Path | None = None,
                     write: bool = True, min_mix_precision: float = MIN_MIX_PRECISION,
                     unknown_rates: dict[tuple[float, float], float] | None = None) -> dict:
    """Measure the open-set rates at every candidate operating point; with ``write``, store
    the chosen margins and figures in the model file.

    ``unknown``: photos of landmarks the model was not trained on. A shipped model knows all
    the landmarks there are photos of, so ``unknown_rates`` can bring the rate a model trained
    without some of them measured at each ``(keep_probability, keep)`` (its report's curve):
    the same rule.
    """
    model = LandmarkModel.load(model_path, device="cpu")
    if model.evidence is None:
        raise ConfigError(f"{model_path} has no reference photos: build them with "
                          "`python -m training gallery` first")
    embedder = Embedder(model)
    _, val = split_samples(model, Path(data), gazetteer)
    known = embedder([p for p, _ in val], "known landmark photos")
    labels = torch.tensor([label for _, label in val])  # photos that fail to decode: none here
    if len(labels) != len(known):
        raise ConfigError("some validation photos could not be decoded")
    kinds = negative_split(model.meta, Path(negatives))
    fitted = {name: embedder(fit, f"{name} (fitted)") for name, (fit, _) in kinds.items()}
    held = {name: embedder(out, f"{name} (held out)") for name, (_, out) in kinds.items()}
    all_ordinary = _stacked([e for e in fitted.values()])
    strangers = None
    if unknown:
        strangers = embedder(list_images(Path(unknown)), "unknown landmarks")
        if not len(strangers):
            raise ConfigError(f"no photos in {unknown} (folders behind links are not followed)")

    known_evidence = evidence_of(model, embedder, known, all_ordinary)
    right = torch.tensor([e.landmark.slug == model.classes[y].slug
                          for e, y in zip(known_evidence, labels.tolist(), strict=True)])
    # Each kind measured against references that never included it.
    held_evidence = {
        name: evidence_of(model, embedder, held[name],
                          _stacked([e for other, e in fitted.items() if other != name]))
        for name in kinds
    }
    stranger_evidence = evidence_of(model, embedder, strangers, all_ordinary) \
        if strangers is not None else []

    sure = [decide(e, Facts(detail=d), Policy(model.threshold)).outcome is not Outcome.NONE
            for e, d in zip(known_evidence, known.detail, strict=True)]
    recognised = [e for e, ok, s in zip(known_evidence, right.tolist(), sure, strict=True)
                  if ok and s]
    if not recognised:
        raise ConfigError("the model recognises none of its validation photos")
    margins = torch.tensor([e.margin for e in recognised])
    probabilities = torch.tensor([e.probability for e in recognised], dtype=torch.float64)

    def margin_keeping(keep: float) -> float:
        return round(float(margins.quantile(1 - keep)), 4)

    def probability_keeping(keep: float) -> float:
        return max(model.threshold, round(float(probabilities.quantile(1 - keep)), 4))

    suggest_margin = margin_keeping(SUGGEST_KEEP)
    rows = []
    for keep_probability in PROBABILITY_KEEPS:
        for keep in KEEPS:
            policy = Policy(model.threshold, margin_keeping(keep), suggest_margin,
                            probability_keeping(keep_probability))
            row = _row(keep, policy, known_evidence, known, right, held_evidence, held,
                       stranger_evidence, strangers,
                       (unknown_rates or {}).get((keep_probability, keep)))
            rows.append({"keep_probability": keep_probability, **row})
    chosen = _choose(rows, min_mix_precision)
    report = {
        "chosen": chosen, "curve": rows, "mix": MIX, "min_mix_precision": min_mix_precision,
        "suggest_keep": SUGGEST_KEEP, "suggest_margin": suggest_margin,
        "known_photos": len(known), "unknown_photos": 0 if strangers is None else len(strangers),
        "held_out_kinds": {name: len(held[name]) for name in kinds},
        "auroc": _aurocs(known_evidence, right, held_evidence, stranger_evidence),
    }
    if write:
        store(model_path, report)
    return report


def _stacked(photos: list[Embedded]) -> torch.Tensor:
    """The embeddings of several lists of photos as one (none: no rows)."""
    rows = [e.embeddings for e in photos if len(e)]
    return torch.cat(rows) if rows else torch.zeros(0, 1)


def _rate(outcomes_: list[Outcome], outcome: Outcome = Outcome.TAGGED) -> float:
    return sum(o is outcome for o in outcomes_) / len(outcomes_) if outcomes_ else 0.0


def _row(keep, policy, known_evidence, known, right, held_evidence, held, stranger_evidence,
         strangers, unknown_elsewhere: float | None) -> dict:
    known_out = outcomes(known_evidence, known, policy)
    tagged = torch.tensor([o is Outcome.TAGGED for o in known_out])
    tagged_right = float((tagged & right).float().mean())
    precision = float((tagged & right).sum() / tagged.sum()) if tagged.any() else 1.0
    per_kind = {name: _rate(outcomes(held_evidence[name], held[name], policy))
                for name in held_evidence}
    suggested_kind = {name: _rate(outcomes(held_evidence[name], held[name], policy),
                                  Outcome.SUGGESTED) for name in held_evidence}
    ordinary = sum(per_kind.values()) / len(per_kind) if per_kind else 0.0
    unknown_out = outcomes(stranger_evidence, strangers, policy) if strangers is not None else []
    unknown = _rate(unknown_out) if strangers is not None else unknown_elsewhere
    wrong_known = float(tagged.float().mean()) - tagged_right
    tags = (MIX["known"] * float(tagged.float().mean()) + MIX["ordinary"] * ordinary
            + MIX["unknown"] * (unknown or 0.0))
    return {
        "keep": keep, "tag_margin": policy.tag_margin, "tag_probability": policy.tag_floor,
        "known_tagged_right": tagged_right, "known_precision": precision,
        "known_tagged_wrong": wrong_known,
        "known_suggested": _rate(known_out, Outcome.SUGGESTED),
        "ordinary_tagged": ordinary, "ordinary_tagged_per_kind": per_kind,
        "ordinary_suggested_per_kind": suggested_kind,
        "unknown_tagged": unknown,
        "unknown_measured_by": "this model" if strangers is not None
        else ("a model trained without them" if unknown is not None else None),
        "unknown_suggested": _rate(unknown_out, Outcome.SUGGESTED) if strangers is not None
        else None,
        "mix_precision": MIX["known"] * tagged_right / tags if tags else 1.0,
    }


def _choose(rows: list[dict], min_mix_precision: float) -> dict:
    """The point tagging the most known photos right that reaches the mix precision, else the
    most precise one."""
    reaching = [row for row in rows if row["mix_precision"] >= min_mix_precision]
    if reaching:
        return max(reaching, key=lambda row: (row["known_tagged_right"], row["mix_precision"]))
    return max(rows, key=lambda row: row["mix_precision"])


def _aurocs(known_evidence, right, held_evidence, stranger_evidence) -> dict:
    """Known photos recognised right against held-out ordinary kinds and unknown landmarks,
    by the softmax alone and by the evidence margin."""
    ok = [e for e, r in zip(known_evidence, right.tolist(), strict=True) if r]
    ordinary = [e for name in held_evidence for e in held_evidence[name]]
    result = {}
    for name, others in (("ordinary", ordinary), ("unknown", stranger_evidence)):
        if others:
            result[name] = {
                "softmax": auroc([e.probability for e in ok], [e.probability for e in others]),
                "margin": auroc([e.margin for e in ok], [e.margin for e in others]),
            }
    return result


def store(model_path: str | Path, report: dict) -> None:
    """Write the chosen margins and the open-set figures into the model file."""
    meta = read_meta(model_path)
    chosen = report["chosen"]
    meta["evidence"] = {**meta["evidence"], "tag_margin": chosen["tag_margin"],
                        "suggest_margin": report["suggest_margin"], "keep": chosen["keep"],
                        "tag_probability": chosen["tag_probability"],
                        "keep_probability": chosen["keep_probability"]}
    meta["metrics"] = {**meta.get("metrics", {}), "open_set": {
        key: chosen[key] for key in ("known_tagged_right", "known_precision",
                                     "ordinary_tagged", "ordinary_tagged_per_kind",
                                     "unknown_tagged", "unknown_measured_by", "mix_precision")
    } | {"auroc": report["auroc"], "held_out_kinds": report["held_out_kinds"]}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(model_path), map_location="cpu")
    save_model_file(module, meta, model_path)
