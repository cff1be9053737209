"""How well does an index learn landmarks the model does not know, from 5-8 photos each?

Prints figures; never passes or fails. Needs ``../shared/data``. Run from the repository root:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/learned_landmarks.py [--cache FILE]

There is no model trained without some landmarks at hand, so ten of the shipped model's 49
(seeded) are *held out of its decision*: their logits and reference photos are masked, as if
the model had never known them. Five are then learned from 5 or 8 photos of their training
split; the other five stay unknown. Every photo goes through phototagger's own code:
``Vocabulary.guesses`` then ``decision.decide`` with the model's policy. Caveat: the network's
features were trained with these landmarks among its classes, so their photos cluster better
than truly new ones would: the learned figures are optimistic.

Counted: photos of learned landmarks other than those learned from (validation split, never
trained on, and the rest of the training split) tagged right / wrong; photos of the unknown
five tagged at all; the other 39 landmarks' validation photos tagged right / wrong with and
without the learned ones; held-out ordinary photos (each kind against ordinary references
without it) tagged.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import torch

from phototagger import config
from phototagger.decision import Evidence, Facts, Outcome, Policy, decide
from phototagger.evidence import class_similarity, ordinary_similarity
from phototagger.model import LandmarkModel
from phototagger.vocabulary import Learned, Vocabulary

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def embed_all(model: LandmarkModel, held: list[int]) -> dict:
    from training.data import negative_split
    from training.evaluate import split_samples
    from training.openset import Embedder

    embedder = Embedder(model)
    train, val = split_samples(model, DATA / "landmarks" / "train")
    out = {"val": embedder([p for p, _ in val], "validation"), "val_labels": [y for _, y in val]}
    train_held = [(p, y) for p, y in train if y in held]
    out["train"] = embedder([p for p, _ in train_held], "training, held out")
    out["train_labels"] = [y for _, y in train_held]
    out["negatives"] = {}
    for name, (fit, held_out) in negative_split(model.meta, DATA / "negatives").items():
        out["negatives"][name] = (len(fit), embedder(held_out, name))
    out["references"], out["members"] = embedder.references, embedder.members
    return out


def candidates(model, logits, embeddings, ordinary, held, references, members, k=5):
    """The masked model's top-k candidates of each photo, with their evidence."""
    logits = logits.clone()
    logits[:, held] = -1e9
    probabilities = torch.softmax(logits / model.temperature, -1)
    similarity = class_similarity(embeddings, references, members,
                                  int(model.evidence["neighbours"]))
    values, indices = probabilities.topk(k, -1)
    return [[Evidence(model.classes[i], p, float(similarity[row, i]), float(ordinary[row]))
             for p, i in zip(ps, idx, strict=True)]
            for row, (ps, idx) in enumerate(zip(values.tolist(), indices.tolist(), strict=True))]


def outcomes(vocabulary, ranked, embeddings, detail, policy):
    guessed = vocabulary.guesses(ranked, embeddings)
    return [(decide(Evidence(r[0].landmark, r[0].probability, r[0].similarity, r[0].ordinary),
                    Facts(detail=d), policy).outcome, r[0].landmark.slug)
            for r, d in zip(guessed, detail, strict=True)]


def rates(results, truth):
    tagged = [(slug, true) for (outcome, slug), true in zip(results, truth, strict=True)
              if outcome is Outcome.TAGGED]
    right = sum(slug == true for slug, true in tagged)
    return right / len(truth), (len(tagged) - right) / len(truth)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, help="keep the embeddings here between runs")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    model = LandmarkModel.load(config.DEFAULT_MODEL, "cpu")
    slugs = sorted(lm.slug for lm in model.classes)
    held_slugs = random.Random(0).sample(slugs, 10)
    held = [i for i, lm in enumerate(model.classes) if lm.slug in held_slugs]
    taught, unknown = held[:5], held[5:]
    if args.cache and args.cache.exists():
        data = torch.load(args.cache, weights_only=False)
    else:
        data = embed_all(model, held)
        if args.cache:
            torch.save(data, args.cache)
    ordinary_refs = torch.jit.load(str(model.path)).ordinary.float()
    policy = Policy.of(model)
    neighbours = int(model.evidence["neighbours"])
    refs, members = data["references"], data["members"]
    print(f"held out of the decision: {', '.join(model.classes[i].name for i in held)}")
    print(f"learned: {', '.join(model.classes[i].name for i in taught)}")
    slug_of = [lm.slug for lm in model.classes]

    def ranked_of(embedded, ordinary):
        return candidates(model, embedded.logits, embedded.embeddings, ordinary, held, refs,
                          members)

    val, train = data["val"], data["train"]
    val_ranked = ranked_of(val, ordinary_similarity(val.embeddings, ordinary_refs, neighbours))
    val_truth = [slug_of[y] for y in data["val_labels"]]
    negatives, start = [], 0
    for fit_count, embedded in data["negatives"].values():  # each kind against the others
        others = torch.cat([ordinary_refs[:start], ordinary_refs[start + fit_count:]])
        ordinary = ordinary_similarity(embedded.embeddings, others, neighbours)
        negatives.append((embedded, ranked_of(embedded, ordinary)))
        start += fit_count
    nothing = Vocabulary([])
    known_rows = [i for i, t in enumerate(val_truth) if slug_of.index(t) not in held]
    base = outcomes(nothing, [val_ranked[i] for i in known_rows],
                    val.embeddings[known_rows], [val.detail[i] for i in known_rows], policy)
    right, wrong = rates(base, [val_truth[i] for i in known_rows])
    print(f"without learned landmarks: the other 39, validation: {right:.1%} right, "
          f"{wrong:.1%} wrong")
    for count in (5, 8):
        for seed in range(args.seeds):
            rng = random.Random(seed)
            used, learned = set(), []
            for c in taught:
                rows = [i for i, y in enumerate(data["train_labels"]) if y == c]
                pick = rng.sample(rows, count)
                used |= set(pick)
                learned.append(Learned(model.classes[c], train.embeddings[pick].numpy()))
            vocabulary = Vocabulary(learned, neighbours)
            started = time.perf_counter()
            val_out = outcomes(vocabulary, val_ranked, val.embeddings, val.detail, policy)
            seconds = time.perf_counter() - started
            rest = [i for i in range(len(train)) if i not in used]
            train_ranked = ranked_of(train, ordinary_similarity(train.embeddings, ordinary_refs,
                                                                neighbours))
            train_out = outcomes(vocabulary, [train_ranked[i] for i in rest],
                                 train.embeddings[rest], [train.detail[i] for i in rest], policy)
            train_truth = [slug_of[data["train_labels"][i]] for i in rest]

            def group(results, truth, classes):
                rows = [i for i, t in enumerate(truth) if slug_of.index(t) in classes]
                return rates([results[i] for i in rows], [truth[i] for i in rows]), len(rows)

            (lv, nv), (lt, nt) = group(val_out, val_truth, taught), group(train_out,
                                                                          train_truth, taught)
            (uv, nu) = group(val_out, val_truth, unknown)
            (ut, nut) = group(train_out, train_truth, unknown)
            (kv, nk) = group(val_out, val_truth, [c for c in range(49) if c not in held])
            neg = [o for embedded, ranked in negatives
                   for o in outcomes(vocabulary, ranked, embedded.embeddings, embedded.detail,
                                     policy)]
            neg_tagged = sum(o is Outcome.TAGGED for o, _ in neg) / len(neg)
            print(f"{count} photos, seed {seed}: learned right/wrong {lv[0]:.1%}/{lv[1]:.1%} of "
                  f"{nv} validation, {lt[0]:.1%}/{lt[1]:.1%} of {nt} other training photos; "
                  f"unknown tagged {sum(uv):.1%} of {nu} / {sum(ut):.1%} of {nut}; the other 39 "
                  f"{kv[0]:.1%} right {kv[1]:.1%} wrong of {nk}; ordinary tagged "
                  f"{neg_tagged:.2%} of {len(neg)}; decided {len(val_out)} photos in "
                  f"{seconds:.2f} s")


if __name__ == "__main__":
    main()
