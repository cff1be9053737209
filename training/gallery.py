"""The second line of evidence: reference photos inside the model file, compared by embedding.

A classifier names one of its landmarks for every photo. Whether the photo really shows it is
asked of the reference photos instead: the network's embedding of the photo is compared with
those of its training photos of that landmark (their *similarity*) and with those of ordinary
photos of no landmark (the *ordinary* similarity). A flower close-up may get 0.9 from the
softmax as Haleakala, but it looks more like the reference flowers than like the park.

The embedding joins two views of the photo that share the frozen trunk of the network: the
fine-tuned landmark features and the untouched ImageNet features (the "what is this" of a
thousand everyday classes, which the landmark training never bent). Each is centred on the
reference photos and normalised, the two are joined, projected onto their main components
(PCA) and normalised again. See docs/models.md for what was measured against what.

:func:`add_gallery` turns a model file of format 1 (logits only) into one of format 2, whose
network returns ``(logits, similarity, ordinary)``: everything the decision needs, computed in
the same forward pass by ``scan``, ``predict`` and the app alike.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from phototagger.errors import ConfigError
from phototagger.evidence import class_similarity, ordinary_similarity
from phototagger.model import read_meta, save_model_file
from training.data import input_batches

#: Neighbours counted: the k-th most similar reference photo gives the similarity, so one
#: look-alike photo in a landmark's folder (a flower among Haleakala's) is not enough.
NEIGHBOURS = 3
#: Dimensions kept by the projection: measured as good as the full 2,560 (docs/models.md),
#: and the reference photos fit in 1.4 MB.
DIMENSIONS = 128
#: Share of the joined embedding given to the ImageNet view.
IMAGENET_WEIGHT = 0.5


class EvidenceNetwork(nn.Module):
    """A landmark network with its reference photos: ``forward(x)`` returns the logits, the
    similarity of each photo to each landmark's reference photos (``N x classes``, the k-th
    best cosine) and to the ordinary reference photos (``N``)."""

    def __init__(self, network: nn.Module, split: int, imagenet_tail: nn.Module | None,
                 dimensions: int, classes: int):
        super().__init__()
        self.trunk = nn.Sequential(*list(network.features)[:split])
        self.tail = nn.Sequential(*list(network.features)[split:])
        self.pool = network.pool
        self.classifier = network.classifier
        self.imagenet_tail = imagenet_tail if imagenet_tail is not None else nn.Identity()
        self.has_imagenet = imagenet_tail is not None
        width = self.classifier[-1].in_features
        second = _out_channels(imagenet_tail) if imagenet_tail is not None else 0
        self.imagenet_weight = IMAGENET_WEIGHT if imagenet_tail is not None else 0.0
        self.neighbours = NEIGHBOURS
        self.register_buffer("landmark_centre", torch.zeros(width))
        self.register_buffer("imagenet_centre", torch.zeros(max(second, 1)))
        self.register_buffer("mean", torch.zeros(width + second))
        self.register_buffer("projection", torch.eye(width + second)[:, :dimensions].clone())
        self.register_buffer("references", torch.zeros(0, dimensions, dtype=torch.float16))
        #: Reference photo indices per class, padded with the index one past the last photo.
        self.register_buffer("members", torch.zeros(classes, 1, dtype=torch.long))
        self.register_buffer("ordinary", torch.zeros(0, dimensions, dtype=torch.float16))

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits and the two pooled views, before centring."""
        x = x.contiguous(memory_format=torch.channels_last)
        shared = self.trunk(x)
        landmark = torch.flatten(self.pool(self.tail(shared)), 1)
        if self.has_imagenet:
            imagenet = torch.flatten(self.pool(self.imagenet_tail(shared)), 1)
        else:
            imagenet = landmark[:, :0]
        return self.classifier(landmark), landmark, imagenet

    def joined(self, landmark: torch.Tensor, imagenet: torch.Tensor) -> torch.Tensor:
        """The two views centred, normalised and joined (before the projection)."""
        parts = [F.normalize(landmark - self.landmark_centre, dim=1)
                 * (1.0 - self.imagenet_weight) ** 0.5]
        if self.has_imagenet:
            parts.append(F.normalize(imagenet - self.imagenet_centre, dim=1)
                         * self.imagenet_weight ** 0.5)
        return torch.cat(parts, 1)

    def embed(self, joined: torch.Tensor) -> torch.Tensor:
        return F.normalize((joined - self.mean) @ self.projection, dim=1)

    @torch.jit.export
    def embedding(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the photo's embedding (what the open-set evaluation compares per fold)."""
        logits, landmark, imagenet = self.features(x)
        return logits, self.embed(self.joined(landmark.float(), imagenet.float()))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits, embedding = self.embedding(x)
        similarity = class_similarity(embedding, self.references, self.members, self.neighbours)
        return logits, similarity, ordinary_similarity(embedding, self.ordinary, self.neighbours)


def _out_channels(module: nn.Module) -> int:
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels


def landmark_network(model_file: str | Path) -> tuple[nn.Module, dict]:
    """The eager landmark network of a model file (format 1 or 2) and its metadata."""
    from training import nets

    meta = read_meta(model_file)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.load(str(model_file), map_location="cpu").eval()
    state = scripted.state_dict()
    if meta["format_version"] >= 2:  # trunk.N / tail.M back to features.N
        split = meta["evidence"]["split"]
        state = {_unsplit(key, split): value for key, value in state.items()
                 if key.startswith(("trunk.", "tail.", "classifier."))}
    network = nets.build(meta["architecture"], len(meta["classes"]), pretrained=False)
    network.load_state_dict(state)
    return network.eval(), meta


def _unsplit(key: str, split: int) -> str:
    part, _, rest = key.partition(".")
    if part == "classifier":
        return key
    index, _, rest = rest.partition(".")
    return f"features.{int(index) + (split if part == 'tail' else 0)}.{rest}"


def imagenet_tail(arch: str, split: int) -> nn.Module | None:
    """The ImageNet network's layers after the frozen trunk (None for a net of our own)."""
    from training.nets import efficientnet_lite

    if arch not in efficientnet_lite.VARIANTS:
        return None
    network = efficientnet_lite.efficientnet_lite(arch, 1000, pretrained=True)
    return copy.deepcopy(nn.Sequential(*list(network.features)[split:])).eval()


@dataclass
class Views:
    """The pooled views of a list of photos (those that decoded) and their logits."""

    logits: torch.Tensor
    landmark: torch.Tensor
    imagenet: torch.Tensor
    kept: list[int]


def views_of(network: EvidenceNetwork, paths: list[Path], preprocess, desc: str = "photos",
             batch_size: int = 32) -> Views:
    """Run photos through the network's first half (decoded as ``scan`` decodes them)."""
    logits, landmark, imagenet, kept = [], [], [], []
    for batch, indices, _ in input_batches(paths, preprocess, batch_size, desc):
        with torch.inference_mode():
            for chunk in batch.split(4):  # activations stay in cache on a CPU
                out = network.features(chunk)
                for rows, part in zip((logits, landmark, imagenet), out, strict=True):
                    rows.append(part.float())
        kept += indices
    if not kept:
        raise ConfigError(f"none of the {len(paths)} {desc} could be decoded")
    return Views(*(torch.cat(rows) for rows in (logits, landmark, imagenet)), kept)


def fit_projection(network: EvidenceNetwork, references: Views) -> None:
    """Centre both views on the reference photos and fit the PCA projection on them."""
    network.landmark_centre.copy_(references.landmark.mean(0))
    if network.has_imagenet:
        network.imagenet_centre.copy_(references.imagenet.mean(0))
    joined = network.joined(references.landmark, references.imagenet)
    mean = joined.mean(0)
    dimensions = min(network.projection.shape[1], *joined.shape)
    _, _, components = torch.pca_lowrank(joined - mean, q=dimensions, center=False, niter=6)
    network.mean.copy_(mean)
    projection = torch.zeros_like(network.projection)
    projection[:, :dimensions] = components
    network.projection.copy_(projection)


def set_references(network: EvidenceNetwork, references: Views, labels: list[int],
                   ordinary: Views | None) -> None:
    """Store the reference embeddings (half precision: they only rank neighbours)."""
    with torch.no_grad():
        embedded = network.embed(network.joined(references.landmark, references.imagenet))
        network.references = embedded.half()
        members = [[i for i, label in enumerate(labels) if label == c]
                   for c in range(network.members.shape[0])]
        width = max(1, max(len(m) for m in members))
        padded = [m + [len(labels)] * (width - len(m)) for m in members]
        network.members = torch.tensor(padded, dtype=torch.long)
        if ordinary is not None:
            network.ordinary = network.embed(
                network.joined(ordinary.landmark, ordinary.imagenet)).half()


def build(model_file: str | Path, reference_photos: list[tuple[Path, int]],
          ordinary_photos: list[Path]) -> tuple[EvidenceNetwork, dict]:
    """The evidence network of a model file, with these reference and ordinary photos."""
    from phototagger.imaging import PreprocessSpec
    from training import nets

    network, meta = landmark_network(model_file)
    frozen = meta.get("training", {}).get("freeze")
    if frozen is None:
        frozen = nets.DEFAULT_FREEZE.get(meta["architecture"], 0)
    # The ImageNet view shares the trunk only where training kept it frozen, as ImageNet's.
    split = frozen or len(network.features)
    tail = imagenet_tail(meta["architecture"], split) if frozen else None
    evidence = EvidenceNetwork(network, split, tail, DIMENSIONS, len(meta["classes"])).eval()
    preprocess = PreprocessSpec.from_dict(meta["preprocess"])
    references = views_of(evidence, [p for p, _ in reference_photos], preprocess,
                          "reference photos")
    labels = [reference_photos[i][1] for i in references.kept]
    ordinary = views_of(evidence, ordinary_photos, preprocess, "ordinary photos") \
        if ordinary_photos else None
    fit_projection(evidence, references)
    set_references(evidence, references, labels, ordinary)
    meta = {key: value for key, value in meta.items() if key not in ("format", "format_version")}
    meta["evidence"] = {
        "split": split, "neighbours": NEIGHBOURS, "dimensions": DIMENSIONS,
        "imagenet_weight": evidence.imagenet_weight,
        "references": len(labels), "ordinary_references": 0 if ordinary is None
        else len(ordinary.kept),
    }
    return evidence, meta


#: Margins no photo reaches: a file whose margins are not yet fitted tags nothing.
UNFITTED_MARGIN = 2.0


def add_gallery(model_file: str | Path, data: Path, negatives: Path | None, out: str | Path,
                gazetteer: Path | None = None) -> Path:
    """Write ``out``: the model file's network with its reference photos (its own training
    split) and the ordinary photos fitted on (all kinds, less what it holds out)."""
    from phototagger.model import LandmarkModel
    from training.data import negative_split
    from training.evaluate import split_samples

    model = LandmarkModel.load(model_file, device="cpu")
    train, _ = split_samples(model, Path(data), gazetteer)
    kinds = negative_split(model.meta, Path(negatives)) if negatives else {}
    ordinary = [path for fit, _ in kinds.values() for path in fit]
    evidence, meta = build(model_file, train, ordinary)
    meta["evidence"] |= {"ordinary_folders": sorted(kinds), "tag_margin": UNFITTED_MARGIN,
                         "suggest_margin": UNFITTED_MARGIN}
    return export(evidence, meta, out)


def export(evidence: EvidenceNetwork, meta: dict, out: str | Path) -> Path:
    """Script the evidence network (checked against the eager one) and write the model file."""
    from training.export import script

    size = meta["preprocess"]["input_size"]
    save_model_file(script(evidence, size), meta, out)
    return Path(out)
