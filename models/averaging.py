"""An exponential moving average of a classifier's weights, validated and kept instead of the raw weights.

Fine-tuning a pretrained network on a few hundred images moves its weights noisily from step to step, and the
epoch kept by early stopping inherits that noise; an average over the last epochs or so is a smoother point of the
same trajectory. The update is torch's own EMA kernel (``torch.optim.swa_utils.get_ema_multi_avg_fn``);
``AveragedModel`` itself is not used because its bookkeeping reads a tensor on the host at every step.
"""

from __future__ import annotations

import copy
import itertools

import torch
from torch import nn
from torch.optim.swa_utils import get_ema_multi_avg_fn


def decay_for(half_life_epochs: float, steps_per_epoch: int) -> float:
    """The per-step decay whose weights halve after ``half_life_epochs`` epochs of ``steps_per_epoch`` steps."""
    return 0.5 ** (1.0 / (half_life_epochs * max(1, steps_per_epoch)))


class WeightAverage:
    """A copy of ``model`` whose floating-point parameters and buffers (BatchNorm statistics) follow the model's
    as an EMA; integer buffers (BatchNorm's batch counter) are copied. Starts equal to the model."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(model)
        self._update = get_ema_multi_avg_fn(decay)

    @staticmethod
    def _tensors(model: nn.Module) -> list[torch.Tensor]:
        return [t.detach() for t in itertools.chain(model.parameters(), model.buffers())]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One EMA step towards ``model``'s current weights (device-side only: no host read)."""
        averaged, current = self._tensors(self.module), self._tensors(model)
        floats = [(a, c) for a, c in zip(averaged, current, strict=True) if a.is_floating_point()]
        if floats:
            self._update([a for a, _ in floats], [c for _, c in floats], None)
        for a, c in zip(averaged, current, strict=True):
            if not a.is_floating_point():
                a.copy_(c)
