"""Classifiers: the paper's VGG-16, ResNet-18 and a small CNN for quick CPU runs.

Every classifier is a :class:`Classifier`: ``backbone`` maps images to a feature vector (used for t-SNE
and quality features) and ``head`` maps features to logits. Inputs are (N, C, H, W) floats in [0, 1];
the adapter inside the model repeats gray to three channels and normalises, so ImageNet weights apply.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from safetensors.torch import load_file
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class InputAdapter(nn.Module):
    """Gray → 3 channels (for ImageNet backbones) and per-channel normalisation."""

    def __init__(self, in_channels: int, out_channels: int, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.repeat = out_channels if in_channels == 1 and out_channels == 3 else 1
        self.register_buffer("mean", torch.tensor(mean[:out_channels]).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std[:out_channels]).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.repeat > 1:
            x = x.expand(-1, self.repeat, -1, -1)
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """adapter → backbone (features) → head (logits)."""

    def __init__(self, adapter: nn.Module, backbone: nn.Module, feature_dim: int, num_classes: int):
        super().__init__()
        self.adapter = adapter
        self.backbone = backbone
        self.head = nn.Linear(feature_dim, num_classes)
        self.feature_dim = feature_dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.adapter(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ClassifierError(ValueError):
    """Unknown classifier name, unusable input size or an unreadable weights file."""


def load_weights_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a local ``.safetensors`` or torchvision ``.pth`` file (no download, no unpickled code)."""
    path = Path(path)
    if not path.is_file():
        raise ClassifierError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ClassifierError(f"weights file {path} does not hold a state dict")
    return state


def _load_matching(module: nn.Module, state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Load every tensor whose name and shape match; refuse a file that matches nothing."""
    own = module.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise ClassifierError(f"weights file {path} matches no parameter of {type(module).__name__}")
    module.load_state_dict(usable, strict=False)


def _vgg16(in_channels: int, image_size: tuple[int, int], weights: str | Path | None) -> tuple[nn.Module, int]:
    """torchvision VGG-16 whose last max-pools become identities when the input is too small for them."""
    vgg = torchvision.models.vgg16(weights=None)
    if weights:
        _load_matching(vgg, load_weights_file(weights), weights)
    side = min(image_size)
    for index, layer in enumerate(vgg.features):
        if isinstance(layer, nn.MaxPool2d):
            if side < 2:
                vgg.features[index] = nn.Identity()
            else:
                side //= 2
    backbone = nn.Sequential(vgg.features, vgg.avgpool, nn.Flatten(1), *list(vgg.classifier.children())[:-1])
    return backbone, 4096


def _resnet18(in_channels: int, image_size: tuple[int, int], weights: str | Path | None) -> tuple[nn.Module, int]:
    """torchvision ResNet-18; below 64 px the stem becomes 3x3 stride 1 without max-pool (MedMNIST's 28 px variant)."""
    net = torchvision.models.resnet18(weights=None)
    if min(image_size) < 64:
        net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    if weights:
        _load_matching(net, load_weights_file(weights), weights)
    net.fc = nn.Identity()
    return net, 512


def _smallcnn(in_channels: int, image_size: tuple[int, int], weights: str | Path | None) -> tuple[nn.Module, int]:
    """Three conv blocks and global pooling: trains in seconds on a CPU."""

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    backbone = nn.Sequential(
        *block(in_channels, 32),
        *block(32, 32),
        nn.MaxPool2d(2),
        *block(32, 64),
        *block(64, 64),
        nn.MaxPool2d(2),
        *block(64, 128),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(1),
        nn.Dropout(0.2),
    )
    if weights:
        _load_matching(backbone, load_weights_file(weights), weights)
    return backbone, 128


_BUILDERS = {"vgg16": _vgg16, "resnet18": _resnet18, "smallcnn": _smallcnn}


def build_classifier(
    name: str,
    in_channels: int,
    num_classes: int,
    image_size: tuple[int, int],
    weights: str | Path | None = None,
) -> Classifier:
    """Build ``name`` for (in_channels, image_size) inputs; ``weights`` is an optional local ImageNet file."""
    if name not in _BUILDERS:
        raise ClassifierError(f"unknown classifier {name!r}; available: {', '.join(_BUILDERS)}")
    if min(image_size) < 8:
        raise ClassifierError(f"images of {image_size} are too small; at least 8x8 is needed")
    backbone, dim = _BUILDERS[name](in_channels, image_size, weights)
    if name == "smallcnn":
        adapter = InputAdapter(in_channels, in_channels, (0.5,) * 3, (0.5,) * 3)
    else:
        adapter = InputAdapter(in_channels, 3, IMAGENET_MEAN, IMAGENET_STD)
    return Classifier(adapter, backbone, dim, num_classes)
