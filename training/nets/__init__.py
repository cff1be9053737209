"""The architectures ``train --arch`` knows, and the input each one expects."""

from __future__ import annotations

import torch
from torch import nn

from phototagger.imaging import PreprocessSpec
from training.nets import efficientnet_lite, scratch

#: ``transfer`` is the name the issue uses for the transfer-learned model: Lite0.
ALIASES = {"transfer": "efficientnet_lite0"}
ARCHS = ("scratch", "efficientnet_lite0", "efficientnet_lite2", *ALIASES)
#: Feature modules kept frozen by default (their activations are cached): see docs/models.md.
DEFAULT_FREEZE = {"scratch": 0, "efficientnet_lite0": 12, "efficientnet_lite2": 16}


def canonical(arch: str) -> str:
    return ALIASES.get(arch, arch)


def build(arch: str, num_classes: int, pretrained: bool = True) -> nn.Module:
    """A fresh network for ``arch``; transfer architectures start from their ImageNet weights.

    Weights are kept channels-last: oneDNN runs convolutions (depthwise ones above all) several
    times faster in that layout on a CPU, and the networks' ``forward`` feeds it.
    """
    arch = canonical(arch)
    if arch == "scratch":
        model = scratch.ScratchNet(num_classes)
    elif arch in efficientnet_lite.VARIANTS:
        model = efficientnet_lite.efficientnet_lite(arch, num_classes, pretrained, drop_path=0.1)
    else:
        raise ValueError(f"unknown architecture {arch!r}: choose from {', '.join(ARCHS)}")
    return model.to(memory_format=torch.channels_last)


def preprocess(arch: str, img_size: int | None = None) -> PreprocessSpec:
    """Input size (the architecture's own unless overridden), resized short side = size / 0.875."""
    arch = canonical(arch)
    if arch == "scratch":
        size, mean, std = img_size or scratch.INPUT_SIZE, scratch.MEAN, scratch.STD
    else:
        variant = efficientnet_lite.VARIANTS[arch]
        size = img_size or variant.input_size
        mean, std = efficientnet_lite.MEAN, efficientnet_lite.STD
    return PreprocessSpec(size, round(size / 0.875), tuple(mean), tuple(std))
