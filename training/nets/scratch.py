"""A small residual CNN trained from scratch, sized for two shared CPU cores and ~6k photos.

Why this shape (docs/models.md has the measurements): a 112 px input and a stem of two strided
convolutions that quarters the image at once keep an epoch to about a minute of one core (a
ResNet-18-like stem at full resolution was four times slower); plain 3x3 residual blocks are what
oneDNN runs fastest per FLOP on a CPU (depthwise convolutions are memory-bound there); batch norm
and zero-initialised residual branches let a warm-up-then-cosine schedule use a high learning
rate; widths stay small (32 to 256 channels, 1.4 M parameters) because 5.6k photos cannot feed a
big net, and dropout before the classifier, label smoothing and strong augmentation fight the
over-fitting a net trained from nothing on so few photos is prone to.
"""

from __future__ import annotations

import torch
from torch import nn

INPUT_SIZE = 112
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            _conv_bn(cin, cout, stride),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        nn.init.zeros_(self.body[2].weight)  # each block starts as the identity: trains faster
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class ScratchNet(nn.Module):
    """Two strided 3x3 convolutions (stem, to 1/4 size), then four stages of residual blocks."""

    def __init__(self, num_classes: int, widths=(32, 64, 128, 256), blocks=(1, 2, 2, 1),
                 dropout: float = 0.3):
        super().__init__()
        layers: list[nn.Module] = [_conv_bn(3, 24, 2), _conv_bn(24, widths[0], 2)]
        cin = widths[0]
        for stage, (width, count) in enumerate(zip(widths, blocks, strict=True)):
            for i in range(count):
                stride = 2 if i == 0 and stage > 0 else 1
                layers.append(BasicBlock(cin, width, stride))
                cin = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(cin, num_classes))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)  # oneDNN's fast layout on CPU
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))
