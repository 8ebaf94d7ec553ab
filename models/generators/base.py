"""The generator interface every generative model (DCGAN, StyleGAN, diffusion, Textual Inversion) follows.

A generator is class-conditional: one model for all classes. The experiment pipeline only ever calls
``fit``, ``sample``, ``save`` and ``load``; progress, cancellation and resumable checkpoints come in
through :class:`models.hooks.TrainHooks`.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import torch

from models.checkpoint import CheckpointDir, read_json, restore_rng
from models.datasets import Split
from models.hooks import StopFn, TrainHooks, stop_if_asked
from models.profiles import GENERATOR_PROFILES, STEP_KEYS, pixel_bounded_batch
from models.runtime import as_input, torch_rng
from models.tensors import to_uint8


def spatial_plan(size: int, model: str = "this generator") -> tuple[int, int]:
    """Split an image side into ``(base, doublings)``: ``size == base * 2**doublings``, 4 <= base <= 8, n >= 1.

    The GANs start from a ``base × base`` map and double it ``doublings`` times, so 28×28 needs no resizing.
    """
    base, doublings = size, 0
    while base % 2 == 0 and base // 2 >= 4:
        base //= 2
        doublings += 1
    if not 4 <= base <= 8 or doublings < 1:
        raise ValueError(
            f"{model} cannot build {size}x{size} images: the side must be b*2^n with 4<=b<=8, n>=1 "
            "(e.g. 28, 32, 64, 128)"
        )
    return base, doublings


class Generator(ABC):
    """Class-conditional image generator.

    Subclasses define ``name`` (the registry key); their ``profiles`` (``{"paper": {...}, "quick": {...}}``,
    each a complete set of hyperparameters) and ``total_key`` come from :data:`models.profiles.GENERATOR_PROFILES`
    and :data:`models.profiles.STEP_KEYS` under that name; ``config`` passed to ``__init__`` overrides a
    profile's keys. They build their networks in :meth:`_build` and train through :meth:`_train_loop`, which
    owns progress, cancellation, divergence checks and checkpoints for all of them.
    """

    name: ClassVar[str]
    profiles: ClassVar[dict[str, dict[str, Any]]]  # from GENERATOR_PROFILES[name]
    total_key: ClassVar[str] = "steps"  # the config key holding the number of training steps (STEP_KEYS[name])
    loss_names: ClassVar[tuple[str, ...]] = ("loss",)  # what one training step returns, in order
    resume_keys: ClassVar[tuple[str, ...]] = ("num_classes", "channels", "image_size")  # must match a checkpoint
    arch_keys: ClassVar[tuple[str, ...]] = ()  # config keys that shape the weights: must match a checkpoint

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if name in GENERATOR_PROFILES:  # a registered generator: its profiles and step key live in models.profiles
            cls.profiles = GENERATOR_PROFILES[name]
            cls.total_key = STEP_KEYS[name]

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
        self.step = 0
        self.last_losses = dict.fromkeys(self.loss_names, math.nan)  # the latest progress report
        self._build()

    @abstractmethod
    def _build(self) -> None:
        """Check the settings and create networks, optimisers and RNGs from ``self.config``."""

    @abstractmethod
    def fit(self, train: Split, hooks: TrainHooks | None = None) -> dict[str, float]:
        """Train on the training split; resume from ``hooks.checkpoint_dir`` when a checkpoint is there.

        Returns final training statistics (e.g. last losses). Raises :class:`models.hooks.Cancelled`.
        """

    @abstractmethod
    def sample(self, per_class: list[int], seed: int = 0, should_stop: StopFn | None = None) -> Split:
        """Generate ``per_class[k]`` uint8 images of class ``k`` (same channels and size as the data); raises
        :class:`models.hooks.Cancelled` between batches once ``should_stop()`` says so."""

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

    def _check_resumable(self, store: CheckpointDir, saved: dict[str, Any]) -> None:
        """Refuse a checkpoint whose data shape or architecture is not this model's."""
        mine = self.describe()
        for key in self.resume_keys:
            if saved[key] != mine[key]:
                raise ValueError(f"checkpoint in {store.directory} has {key}={saved[key]}, this model {mine[key]}")
        for key in self.arch_keys:
            if saved["config"][key] != self.config[key]:
                raise ValueError(
                    f"checkpoint in {store.directory} was trained with {key}={saved['config'][key]}, "
                    f"this model has {self.config[key]}"
                )

    def _open_store(self, hooks: TrainHooks) -> CheckpointDir | None:
        """The hooks' checkpoint folder, after resuming from its latest committed checkpoint when there is one."""
        if hooks.checkpoint_dir is None:
            return None
        store = CheckpointDir(hooks.checkpoint_dir)
        found = store.latest(self.device)
        if found is not None:
            self._check_resumable(store, found.meta)
            self._restore(found.tensors, found.meta)
            self.step = found.step
            self.last_losses = dict(found.meta.get("losses", self.last_losses))
            hooks.resumed(self.step, int(self.config[self.total_key]))
        return store

    def _restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Load weights, optimiser and RNG state from a checkpoint written by :meth:`_checkpoint_state`."""
        raise NotImplementedError(f"{self.name} cannot resume")

    def _checkpoint_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Tensors and JSON metadata of a resumable checkpoint (subclasses that train)."""
        raise NotImplementedError(f"{self.name} cannot checkpoint")

    def _train_loop(
        self,
        hooks: TrainHooks,
        store: CheckpointDir | None,
        step: Callable[[], torch.Tensor],
        extra: Callable[[], dict[str, float]] | None = None,
    ) -> dict[str, float]:
        """Call ``step`` (one optimisation step returning its detached ``loss_names`` values) up to the total.

        Losses are averaged over each report window with one device sync per report; a non-finite average
        stops training; ``extra`` adds values to each report; checkpoints follow the config or the hooks.
        """
        cfg = self.config
        total = int(cfg[self.total_key])
        every = max(1, int(cfg["checkpoint_every"] or hooks.checkpoint_every))
        log_every = max(1, int(cfg["log_every"]))
        start_step, started = self.step, time.perf_counter()
        sums = torch.zeros(len(self.loss_names), device=self.device)
        window = 0
        while self.step < total:
            hooks.check_cancel()
            sums += step().float()
            self.step += 1
            window += 1
            if self.step % log_every == 0 or self.step == total:
                means = (sums / window).tolist()
                self.last_losses = {**dict(zip(self.loss_names, means, strict=True)), **(extra() if extra else {})}
                if not all(math.isfinite(value) for value in means):
                    raise FloatingPointError(f"{self.name} losses diverged at step {self.step}: {self.last_losses}")
                hooks.progress(self.step, total, dict(self.last_losses))
                sums.zero_()
                window = 0
            if store is not None and (self.step % every == 0 or self.step == total):
                tensors, meta = self._checkpoint_state()
                store.save(self.step, tensors, {**meta, "losses": self.last_losses})
        return {
            **self.last_losses,
            "steps": float(self.step),
            "trained_steps": float(self.step - start_step),
            "seconds": time.perf_counter() - started,
        }

    def _training_tensors(self, train: Split) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """uint8 images and labels on the device (converted per batch), and the per-image draw weights (on the
        device too, so a batch is drawn there without a host round trip)."""
        images = torch.from_numpy(np.ascontiguousarray(train.images)).to(self.device)
        labels = torch.from_numpy(train.labels.astype(np.int64)).to(self.device)
        return images, labels, self._sampling_weights(train.labels.astype(np.int64)).to(self.device)

    def _train_rng(self) -> torch.Generator:
        """The private training RNG (batches, flips, latents, noise): it draws on the training device, so a step
        never copies host-drawn numbers to the device; checkpoints carry its state (:meth:`_restore_rng`)."""
        return torch_rng(self.seed + 1, self.device)

    def _restore_rng(self, state: torch.Tensor, meta: dict[str, Any]) -> None:
        """The training RNG as checkpointed (exact), or reseeded from the step when the checkpoint was written on
        another kind of device (:func:`models.checkpoint.restore_rng`)."""
        restore_rng(self.rng, state, self.seed + 1 + 1_000_003 * int(meta.get("step", 0)))

    def _to_model(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, H, W, C) -> model input (N, C, H, W) in [-1, 1]."""
        return images.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)

    def _real_batch(
        self, images: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A weighted draw of real images (model space, randomly flipped when ``hflip``) and their labels."""
        # Drawn on the device from the device's generator: no host round trip (CPU draws are as before).
        index = torch.multinomial(weights, self.config["batch_size"], replacement=True, generator=self.rng)
        flip = torch.rand(len(index), generator=self.rng, device=self.device) < 0.5  # drawn always (same stream)
        x = self._to_model(images[index])
        if self.config["hflip"]:
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        return as_input(x), labels[index]

    def sample_batch(self) -> int:
        """Images rendered per sampling batch: ``sample_batch_size`` capped by the pixel budget
        (:func:`models.profiles.pixel_bounded_batch`: 256 at 64² gray, 21 at 128² RGB), so sampling's working set
        does not grow with the image size. Generators whose rendering draws noise per batch (StyleGAN's
        per-layer noise, diffusion's sampler steps) give other images when the cap changes the batch."""
        return pixel_bounded_batch(int(self.config["sample_batch_size"]), (self.channels, *self.image_size))

    def _sample_in_batches(
        self,
        labels: np.ndarray,
        noise: torch.Tensor,
        render: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        should_stop: StopFn | None = None,
    ) -> Split:
        """``render(noise, labels)`` -> images in [0, 1], over chunks of :meth:`sample_batch` images, as one uint8
        split."""
        chunks = []
        batch = self.sample_batch()
        for start in range(0, len(labels), batch):
            stop_if_asked(should_stop)
            y = torch.from_numpy(labels[start : start + batch]).to(self.device)
            chunks.append(to_uint8(render(noise[start : start + batch].to(self.device), y)))
        return self.assemble(chunks, labels)

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
