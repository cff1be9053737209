"""The reference photos' evidence, computed from embeddings: one implementation for all.

A photo's *similarity* to a landmark is the cosine to its k-th most alike reference photo of
that landmark (so one look-alike photo in a landmark's folder is not enough); its *ordinary*
similarity the same against ordinary photos of no landmark. The model file's network computes
both for its own landmarks (these functions are scripted into it, see training/gallery.py);
``scan``, ``learn`` and the evaluation compute them here for the landmarks an index learned,
from the same embeddings.
"""

from __future__ import annotations

import torch


def class_similarity(embedding: torch.Tensor, references: torch.Tensor, members: torch.Tensor,
                     neighbours: int) -> torch.Tensor:
    """``N x classes``: the k-th best cosine between each photo and each class's references.

    ``members``: per class, the indices of its reference photos, padded with the index one
    past the last photo (a class with fewer than k photos takes its worst one).
    """
    scores = embedding @ references.to(embedding.dtype).t()
    padded = torch.cat([scores, scores.new_full((scores.shape[0], 1), -2.0)], 1)
    per_class = padded[:, members]  # N x classes x most reference photos of one class
    k = min(neighbours, per_class.shape[2])
    return per_class.topk(k, dim=2).values[:, :, k - 1]


def ordinary_similarity(embedding: torch.Tensor, ordinary: torch.Tensor,
                        neighbours: int) -> torch.Tensor:
    """``N``: the k-th best cosine between each photo and the ordinary reference photos."""
    if ordinary.shape[0] < neighbours:
        return embedding.new_full((embedding.shape[0],), -1.0)
    scores = embedding @ ordinary.to(embedding.dtype).t()
    return scores.topk(neighbours, dim=1).values[:, neighbours - 1]
