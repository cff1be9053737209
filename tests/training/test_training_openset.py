"""The open-set evaluation's parts: splits that hold, neighbours counted right, the rule."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from synthetic import write_photo

from phototagger.evidence import class_similarity, ordinary_similarity
from training.data import negative_split
from training.openset import _choose, auroc


def negatives(root: Path, kinds: dict[str, int]) -> Path:
    for n, (kind, count) in enumerate(kinds.items()):
        for i in range(count):
            write_photo(root / kind / f"{i:02d}.jpg", (30 * n, 100, 200 - 30 * n), 50 * n + i)
    return root


def test_a_kind_added_later_reshuffles_nothing_the_file_records(tmp_path):
    root = negatives(tmp_path / "negatives", {"food": 6, "people": 6})
    meta = {"training": {"split_seed": 0, "negatives_held_out": 0.5,
                         "negatives_folders": ["food", "people"]}}
    before = negative_split(meta, root)
    negatives(root, {"birds": 6, "documents": 6})  # sorted before "food": the old bug's case
    with_evidence = {**meta, "evidence": {"ordinary_folders": ["food", "people"]}}
    after = negative_split(with_evidence, root)
    assert after == before
    assert sorted(after) == ["food", "people"]
    # A file without reference photos yet splits the kinds there are now, separately.
    fresh = negative_split(meta, root)
    assert fresh["food"] == before["food"] and fresh["people"] == before["people"]
    assert sorted(fresh) == ["birds", "documents", "food", "people"]
    for fit, held in fresh.values():
        assert len(fit) == len(held) == 3 and not set(fit) & set(held)


def test_similarity_is_the_kth_neighbour_of_each_class():
    embedding = torch.tensor([[1.0, 0.0]])
    references = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [0.6, 0.8]])
    members = torch.tensor([[0, 1, 2], [3, 4, 4]])  # class 1 has one photo; 4 pads
    first = class_similarity(embedding, references, members, 1)
    second = class_similarity(embedding, references, members, 2)
    assert first[0].tolist() == pytest.approx([1.0, 0.6])
    assert second[0].tolist() == pytest.approx([0.8, -2.0])  # too few photos: no evidence
    assert ordinary_similarity(embedding, references, 2).tolist() == pytest.approx([0.8])
    assert ordinary_similarity(embedding, references[:1], 2).tolist() == [-1.0]


def test_auroc_counts_pairs_and_ties():
    assert auroc([3, 4], [1, 2]) == 1.0
    assert auroc([1, 2], [3, 4]) == 0.0
    assert auroc([1], [1]) == 0.5


def test_the_operating_point_tags_the_most_known_photos_that_reach_the_mix_precision():
    rows = [{"keep": 0.99, "known_tagged_right": 0.9, "mix_precision": 0.5},
            {"keep": 0.95, "known_tagged_right": 0.8, "mix_precision": 0.91},
            {"keep": 0.97, "known_tagged_right": 0.7, "mix_precision": 0.93},
            {"keep": 0.9, "known_tagged_right": 0.6, "mix_precision": 0.97}]
    assert _choose(rows, 0.9)["keep"] == 0.95
    assert _choose(rows, 0.99)["keep"] == 0.9  # none reaches it: the most precise
