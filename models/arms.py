"""The comparison arms of the paper's Table 1: each yields one epoch of training batches ``(x, soft_y)``.

Images travel as uint8 (N, C, H, W) tensors on the training device and become floats in [0, 1] per batch,
so even a few thousand 128 px images stay small in memory. Labels are always soft (N, K) rows summing to 1,
so one soft-target loss serves every arm.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from models.augment import AugMixImages
from models.datasets import Split
from models.genmix import GenMixConfig, GenMixer, mixup_batch
from models.runtime import DTYPE, torch_rng
from models.spec import MIXUP_ALPHA
from models.tensors import one_hot

Batch = tuple[torch.Tensor, torch.Tensor]


class ArmError(ValueError):
    """Unknown arm, or an arm that needs synthetic images got none."""


def _uint8_nchw(split: Split, device: torch.device) -> torch.Tensor:
    """The split's (N, H, W, C) images as an (N, C, H, W) view: channels_last strides for RGB, no copy on CPU.

    A contiguous NCHW copy of an RGB training set would double what the arm holds (a 20k × 64² RGB set: 235
    MiB more); batches are made contiguous when they are gathered instead (:func:`_float`).
    """
    return torch.from_numpy(np.ascontiguousarray(split.images)).permute(0, 3, 1, 2).to(device)


def _float(images: torch.Tensor) -> torch.Tensor:
    """A gathered uint8 batch as contiguous float NCHW in [0, 1]: the layout every arm trained on before."""
    return images.contiguous().to(DTYPE).div_(255.0)


@dataclass
class ArmSettings:
    """Knobs the arms share: MixUp's α (Beta(α, α)), GenMix's mixer settings."""

    mixup_alpha: float = MIXUP_ALPHA
    genmix: GenMixConfig | None = None


class Arm:
    """Baseline: shuffled real images with one-hot labels. Subclasses change the pool or the batch."""

    needs_synthetic = False

    def __init__(
        self,
        real: Split,
        num_classes: int,
        device: torch.device,
        seed: int,
        synthetic: Split | None = None,
        settings: ArmSettings | None = None,
    ) -> None:
        if self.needs_synthetic and (synthetic is None or len(synthetic) == 0):
            raise ArmError(f"arm {type(self).__name__} needs synthetic images")
        self.num_classes = num_classes
        self.device = device
        self.settings = settings or ArmSettings()
        self.seed = seed
        self.rng = torch_rng(seed, device)
        self.cpu_rng = torch_rng(seed + 1)
        self.images, self.labels = self._pool(real, synthetic)

    def _pool(self, real: Split, synthetic: Split | None) -> tuple[torch.Tensor, torch.Tensor]:
        return _uint8_nchw(real, self.device), torch.from_numpy(real.labels).long().to(self.device)

    def __len__(self) -> int:
        return len(self.labels)

    def epoch(self, batch_size: int) -> Iterator[Batch]:
        """One pass over the pool in a fresh random order (the last, smaller batch is kept)."""
        order = torch.randperm(len(self.labels), generator=self.rng, device=self.device)
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            yield self.batch(index)

    def batch(self, index: torch.Tensor) -> Batch:
        return _float(self.images[index]), one_hot(self.labels[index], self.num_classes)


class MixUpArm(Arm):
    """Real–real MixUp (Zhang et al.): one λ ~ Beta(α, α) per batch, partner = a permutation of the batch."""

    def batch(self, index: torch.Tensor) -> Batch:
        x, y = super().batch(index)
        mixed_x, mixed_y, _ = mixup_batch(x, y, self.settings.mixup_alpha, self.rng)
        return mixed_x, mixed_y


class AugMixArm(Arm):
    """torchvision's AugMix on each real image (one-hot labels; the paper uses no JSD loss)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.augmix = AugMixImages()

    def batch(self, index: torch.Tensor) -> Batch:
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=self.cpu_rng))  # a host-side draw: no device sync
        mixed = self.augmix(self.images[index].contiguous(), seed)  # on the training device
        return _float(mixed), one_hot(self.labels[index], self.num_classes)


class GenerativeArm(Arm):
    """Real plus synthetic images in one pool (the synthetic set was sampled at the configured ratio)."""

    needs_synthetic = True

    def _pool(self, real: Split, synthetic: Split | None) -> tuple[torch.Tensor, torch.Tensor]:
        assert synthetic is not None
        images = torch.cat([_uint8_nchw(real, self.device), _uint8_nchw(synthetic, self.device)])
        labels = torch.from_numpy(np.concatenate([real.labels, synthetic.labels])).long().to(self.device)
        return images, labels


class GenMixArm(Arm):
    """The paper's GenMix: every real image is blended with a partner from real ∪ synthetic (Eq. 1)."""

    needs_synthetic = True

    def _pool(self, real: Split, synthetic: Split | None) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = super()._pool(real, synthetic)
        assert synthetic is not None
        # uint8 pool (on the device too), converted per batch: bit-identical to a float pool of images / 255
        self.mixer = GenMixer(
            real_images=images,
            real_labels=labels,
            synthetic_images=_uint8_nchw(synthetic, self.device),
            synthetic_labels=torch.from_numpy(synthetic.labels).long().to(self.device),
            num_classes=self.num_classes,
            config=self.settings.genmix or GenMixConfig(),
            seed=self.seed,
            value_divisor=255.0,
        )
        return self.mixer.real_images, labels  # the mixer's real rows are these images: one uint8 copy

    def batch(self, index: torch.Tensor) -> Batch:
        mixed = self.mixer.mix(index, check_range=False)  # a permutation of the real rows: no host round trip
        return mixed.images.contiguous(), mixed.soft_labels


_ARMS: dict[str, type[Arm]] = {
    "baseline": Arm,
    "mixup": MixUpArm,
    "augmix": AugMixArm,
    "generative": GenerativeArm,
    "genmix": GenMixArm,
}


def build_arm(
    name: str,
    real: Split,
    num_classes: int,
    device: torch.device,
    seed: int,
    synthetic: Split | None = None,
    settings: ArmSettings | None = None,
) -> Arm:
    if name not in _ARMS:
        raise ArmError(f"unknown arm {name!r}; available: {', '.join(_ARMS)}")
    return _ARMS[name](real, num_classes, device, seed, synthetic=synthetic, settings=settings)
