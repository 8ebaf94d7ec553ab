"""Light standard augmentation of classifier batches: horizontal flips, small shifts and rotations; and the AugMix arm's
per-image AugMix (:class:`AugMixImages`).

Applied by the training loop to whatever batch an arm yields (real, MixUp, GenMix...), so every arm of a
comparison gets exactly the same treatment and GenMix is measured on top of what a lab would do anyway. One
random affine warp per image (``affine_grid`` + ``grid_sample``, bilinear, reflected borders) on the device
the batch lives on. The augmenter owns its RNG, seeded from the arm's seed, so augmentation never shifts the
arm's shuffling or mixing draws, and the training checkpoint carries its state, so a resumed run sees the same
warps as an uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from models.profiles import CLASSIFIER_AUGMENTATIONS
from models.runtime import torch_rng

MAX_SHIFT = 1.0 / 16.0
"""Largest shift, as a fraction of the image side (4 px at 64 px)."""
MAX_DEGREES = 10.0
"""Largest rotation, either way."""
SEED_OFFSET = 0x5EED_A06
"""Added to the arm's seed, so the augmenter's stream differs from the arm's own."""


class BatchAugment:
    """``ops`` ⊆ :data:`models.profiles.CLASSIFIER_AUGMENTATIONS`; with no ops it returns batches untouched."""

    def __init__(self, ops: Sequence[str], seed: int, device: torch.device | str = "cpu") -> None:
        unknown = set(ops) - set(CLASSIFIER_AUGMENTATIONS)
        if unknown:
            known = ", ".join(CLASSIFIER_AUGMENTATIONS)
            raise ValueError(f"unknown augmentation {sorted(unknown)}; choose from {known}")
        self.ops = frozenset(ops)
        self.generator = torch_rng(seed + SEED_OFFSET, device)

    def __bool__(self) -> bool:
        return bool(self.ops)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) floats → the same batch, each image flipped / shifted / rotated at random."""
        if not self.ops:
            return x
        n, _, h, w = x.shape
        # One draw of four uniforms per image whatever the ops, so the stream advances alike for any setting.
        u = torch.rand(n, 4, generator=self.generator, device=x.device, dtype=torch.float32)
        zero = torch.zeros(n, device=x.device)
        flip = torch.where(u[:, 0] < 0.5, -1.0, 1.0) if "hflip" in self.ops else zero + 1
        angle = (2 * u[:, 1] - 1) * math.radians(MAX_DEGREES) if "rotate" in self.ops else zero
        shift = (2 * u[:, 2:] - 1) * 2 * MAX_SHIFT if "shift" in self.ops else torch.zeros(n, 2, device=x.device)
        cos, sin = torch.cos(angle), torch.sin(angle)
        # Output pixel (x, y) in [-1, 1] coordinates samples the input at theta @ (x, y, 1): rotation in pixel
        # units (hence the aspect factors), the flip applied first, the shift last.
        theta = torch.stack(
            [
                torch.stack([cos * flip, -sin * (h / w), shift[:, 0]], dim=1),
                torch.stack([sin * (w / h) * flip, cos, shift[:, 1]], dim=1),
            ],
            dim=1,
        ).to(x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    def get_state(self) -> torch.Tensor:
        return self.generator.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)


class AugMixImages:
    """torchvision's AugMix (Hendrycks et al.) drawn afresh for every image, on the device the images live on.

    torchvision applies one draw of operations to a whole batch, so the images go through it one at a time;
    they stay on their device (a GPU run no longer copies each batch to the host and back). The draws come from
    torch's global RNGs, forked and seeded from ``seed`` for the call, so a batch depends only on its seed and
    never moves the caller's streams; on the CPU the images equal those of the earlier host-side loop.
    """

    def __init__(self) -> None:
        self.augmix = v2.AugMix()

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, seed: int) -> torch.Tensor:
        """uint8 (N, C, H, W) -> uint8 (N, C, H, W), each image with its own AugMix draw."""
        cuda = images.device.type == "cuda"
        with torch.random.fork_rng(devices=[images.device] if cuda else []):
            torch.random.default_generator.manual_seed(seed)  # operation choices and magnitudes (host-side)
            if cuda:
                with torch.cuda.device(images.device):
                    torch.cuda.manual_seed(seed)  # the per-image Dirichlet weights, drawn on the device
            return torch.stack([self.augmix(image) for image in images])
