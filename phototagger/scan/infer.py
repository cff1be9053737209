"""The infer stage: a batch of decoded inputs -> each photo's ranked evidence and embedding.

One network pass gives the probabilities, the reference photos' evidence and the embedding
the index keeps; the landmarks this index learned are ranked in here too, so every engine
hands the decide stage the same answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from phototagger import search
from phototagger.decision import Evidence
from phototagger.model import LandmarkModel
from phototagger.vocabulary import Vocabulary

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Answer:
    """What the network says of one photo: its top-k landmarks and its stored embedding."""

    ranked: list[Evidence]
    vector: bytes | None  # None: a model file without reference photos makes none


class Inference:
    """The network and this index's learned landmarks, applied batch by batch."""

    def __init__(self, model: LandmarkModel, vocabulary: Vocabulary, top_k: int = 5,
                 batch_size: int | None = None):
        self.model = model
        self.vocabulary = vocabulary
        self.top_k = top_k
        #: The scan's batch size: on CUDA a shorter batch runs padded to it (one shape).
        self.batch_size = batch_size

    def __call__(self, inputs: torch.Tensor) -> list[Answer]:
        """One answer per row of ``inputs``, in their order."""
        if not len(inputs):
            return []
        scores = self.model.scores(inputs, pad_to=self.batch_size)
        ranked = self.vocabulary.guesses(self.model.ranked(scores, self.top_k),
                                         scores.embeddings)
        vectors = [None] * len(ranked) if scores.embeddings is None \
            else [search.encode(row) for row in scores.embeddings.numpy()]
        return [Answer(candidates, vector)
                for candidates, vector in zip(ranked, vectors, strict=True)]
