"""The generator interface every generative model (DCGAN, StyleGAN, diffusion, Textual Inversion) follows.

A generator is class-conditional: one model for all classes. The experiment pipeline only ever calls
``fit``, ``sample``, ``save`` and ``load``; progress, cancellation and resumable checkpoints come in
through :class:`models.hooks.TrainHooks`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import torch

from models.checkpoint import read_json
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

    def describe(self) -> dict[str, Any]:
        """What :meth:`load` needs to rebuild this generator; saved as JSON next to the weights."""
        return {
            "generator": self.name,
            "num_classes": self.num_classes,
            "channels": self.channels,
            "image_size": list(self.image_size),
            "config": self.config,
            "profile": self.profile,
            "seed": self.seed,
        }

    @classmethod
    def read_description(cls, path: Path) -> dict[str, Any]:
        """The JSON written by :meth:`describe`, refusing one that belongs to another generator."""
        meta = read_json(path)
        if meta.get("generator") != cls.name:
            raise ValueError(f"{path} holds a {meta.get('generator')!r} generator, not {cls.name!r}")
        return meta

    @classmethod
    def from_description(
        cls, meta: dict[str, Any], device: torch.device | str, config: dict[str, Any] | None = None
    ) -> Self:
        """A fresh generator with the description's shape, profile, seed and (or ``config``'s) settings."""
        return cls(
            meta["num_classes"],
            meta["channels"],
            tuple(meta["image_size"]),
            config=meta["config"] if config is None else config,
            profile=meta["profile"],
            device=device,
            seed=meta["seed"],
        )

    def sample_labels(self, per_class: list[int]) -> np.ndarray:
        """Labels in class order for ``per_class[k]`` images of class ``k`` (validated)."""
        if len(per_class) != self.num_classes or min(per_class, default=0) < 0:
            raise ValueError(f"per_class needs {self.num_classes} non-negative counts, got {per_class}")
        return np.repeat(np.arange(self.num_classes, dtype=np.int64), per_class)

    def assemble(self, chunks: list[np.ndarray], labels: np.ndarray) -> Split:
        """Batches of uint8 images (in label order) as one split; an empty request gives an empty split."""
        h, w = self.image_size
        images = np.concatenate(chunks) if chunks else np.zeros((0, h, w, self.channels), np.uint8)
        return Split(images, labels)

    def _check_data(self, train: Split) -> None:
        """Refuse training data whose shape or labels do not fit this generator."""
        n, h, w, c = train.images.shape
        if (h, w) != tuple(self.image_size) or c != self.channels:
            raise ValueError(f"training images are {h}x{w}x{c}, model expects {self.image_size}x{self.channels}")
        if n == 0:
            raise ValueError("no training images")
        if train.labels.min() < 0 or train.labels.max() >= self.num_classes:
            raise ValueError(f"labels must lie in [0, {self.num_classes})")

    def _sampling_weights(self, labels: np.ndarray) -> torch.Tensor:
        """Per-image draw weights: uniform, or (``balanced``) each class drawn equally often."""
        if not self.config["balanced"]:
            return torch.ones(len(labels), dtype=torch.float64)
        counts = np.bincount(labels, minlength=self.num_classes)
        return torch.from_numpy(1.0 / counts[labels]).to(torch.float64)

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write weights (safetensors) and a JSON config to ``directory``."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path, device: torch.device | str = "cpu") -> Generator:
        """Rebuild a generator written by :meth:`save`."""
