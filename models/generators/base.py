"""The generator interface every generative model (DCGAN, StyleGAN, diffusion, Textual Inversion) follows.

A generator is class-conditional: one model for all classes. The experiment pipeline only ever calls
``fit``, ``sample``, ``save`` and ``load``; progress, cancellation and resumable checkpoints come in
through :class:`models.hooks.TrainHooks`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import torch

from models.data import Split
from models.hooks import TrainHooks


class Generator(ABC):
    """Class-conditional image generator.

    Subclasses define ``name`` (the registry key) and ``profiles`` (``{"paper": {...}, "quick": {...}}``,
    each a complete set of hyperparameters); ``config`` passed to ``__init__`` overrides a profile's keys.
    """

    name: ClassVar[str]
    profiles: ClassVar[dict[str, dict[str, Any]]]

    def __init__(
        self,
        num_classes: int,
        channels: int,
        image_size: tuple[int, int],
        config: dict[str, Any] | None = None,
        profile: str = "quick",
        device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        if profile not in self.profiles:
            raise ValueError(f"unknown profile {profile!r} for {self.name}; choose from {sorted(self.profiles)}")
        merged = dict(self.profiles[profile])
        unknown = set(config or {}) - set(merged)
        if unknown:
            raise ValueError(f"unknown {self.name} settings {sorted(unknown)}; known: {sorted(merged)}")
        merged.update(config or {})
        self.num_classes = num_classes
        self.channels = channels
        self.image_size = image_size
        self.config = merged
        self.profile = profile
        self.device = torch.device(device)
        self.seed = seed

    @abstractmethod
    def fit(self, train: Split, hooks: TrainHooks | None = None) -> dict[str, float]:
        """Train on the training split; resume from ``hooks.checkpoint_dir`` when a checkpoint is there.

        Returns final training statistics (e.g. last losses). Raises :class:`models.hooks.Cancelled`.
        """

    @abstractmethod
    def sample(self, per_class: list[int], seed: int = 0) -> Split:
        """Generate ``per_class[k]`` uint8 images of class ``k`` (same channels and size as the data)."""

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write weights (safetensors) and a JSON config to ``directory``."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path, device: torch.device | str = "cpu") -> Generator:
        """Rebuild a generator written by :meth:`save`."""
