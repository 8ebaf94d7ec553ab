"""The classifier loop: soft-target cross-entropy, Adam(W), early stopping on the validation set, best weights kept.

One loop serves every arm (arms yield soft labels). The fine-tuning recipe of a pretrained network lives here
too: a linear learning-rate warm-up, an optional cosine decay, a lower learning rate for the backbone than for
the new head, light augmentation (:mod:`models.augment`) of every arm's batches alike, and optionally an
exponential moving average of the weights (:mod:`models.averaging`), validated and kept in their place. The
learning rate is a pure function of the step, and the augmenter's RNG is checkpointed, so a resumed run repeats
an uninterrupted one. It checkpoints after every epoch when asked, so a redelivered job resumes at the next epoch
instead of starting over.
"""

from __future__ import annotations

import copy
import ctypes
import gc
import math
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from models.arms import Arm
from models.augment import BatchAugment
from models.averaging import WeightAverage, decay_for
from models.checkpoint import (
    CheckpointDir,
    load_optimizer_state,
    optimizer_state,
    prefixed,
    restore_rng,
    unprefixed,
)
from models.datasets import Split
from models.hooks import TrainHooks
from models.metrics import compute_metrics
from models.profiles import (
    CLASSIFIER_AUGMENTATIONS,
    CLASSIFIER_PROFILES,
    LR_SCHEDULES,
    MONITORS,
    OPTIMIZERS,
    classifier_problems,
    pixel_bounded_batch,
)
from models.profiles import CLASSIFIER_DEFAULTS as _D
from models.runtime import as_input, autocast, place_model
from models.tensors import to_tensor

REPORT_EVERY = 10
"""Training steps between progress reports: the only steps at which the loop reads a loss back from the device."""


@dataclass
class ClassifierConfig:
    """Hyperparameters of one classifier run; defaults (the paper's) in :data:`models.profiles.CLASSIFIER_DEFAULTS`."""

    name: str = _D["name"]
    epochs: int = _D["epochs"]
    batch_size: int = _D["batch_size"]
    lr: float = _D["lr"]
    weight_decay: float = _D["weight_decay"]
    patience: int = _D["patience"]
    monitor: str = _D["monitor"]
    weights: str | None = _D["weights"]
    pretrained: bool = _D["pretrained"]
    allow_download: bool = _D["allow_download"]
    input_size: int | None = _D["input_size"]
    optimizer: str = _D["optimizer"]
    schedule: str = _D["schedule"]
    warmup_epochs: int = _D["warmup_epochs"]
    backbone_lr_mult: float = _D["backbone_lr_mult"]
    augment: list[str] = field(default_factory=lambda: list(_D["augment"]))
    ema_half_life: float = _D["ema_half_life"]
    eval_batch_size: int = _D["eval_batch_size"]

    def __post_init__(self) -> None:
        if self.monitor not in MONITORS:
            raise ValueError(f"unknown monitor {self.monitor!r}; choose from {', '.join(MONITORS)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose from {', '.join(OPTIMIZERS)}")
        if self.schedule not in LR_SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose from {', '.join(LR_SCHEDULES)}")
        unknown = set(self.augment) - set(CLASSIFIER_AUGMENTATIONS)
        if unknown:
            raise ValueError(f"unknown augment {sorted(unknown)}; choose from {', '.join(CLASSIFIER_AUGMENTATIONS)}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.patience < 1:
            raise ValueError("epochs, batch_size and patience must be ≥ 1 and lr > 0")
        if self.warmup_epochs < 0 or self.backbone_lr_mult < 0 or self.ema_half_life < 0:
            raise ValueError("warmup_epochs, backbone_lr_mult and ema_half_life must be ≥ 0")
        problems = classifier_problems(asdict(self))
        if problems:
            raise ValueError("; ".join(problems))


def classifier_config(profile: str, overrides: dict[str, Any] | None = None) -> ClassifierConfig:
    """The profile's settings with explicit ``overrides`` on top; unknown keys are an error."""
    if profile not in CLASSIFIER_PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose from {', '.join(CLASSIFIER_PROFILES)}")
    known = set(ClassifierConfig.__dataclass_fields__)
    unknown = set(overrides or {}) - known
    if unknown:
        raise ValueError(f"unknown classifier settings {sorted(unknown)}; known: {sorted(known)}")
    return ClassifierConfig(**{**CLASSIFIER_PROFILES[profile], **(overrides or {})})


def lr_factor(config: ClassifierConfig, step: int, steps_per_epoch: int) -> float:
    """The learning rate of global ``step`` (0-based) as a fraction of ``config.lr``: linear warm-up over
    ``warmup_epochs``, then constant or a cosine decay reaching 0 after ``epochs``."""
    warmup = config.warmup_epochs * steps_per_epoch
    if step < warmup:
        return (step + 1) / warmup
    if config.schedule == "cosine":
        total = config.epochs * steps_per_epoch
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


def build_optimizer(model: nn.Module, config: ClassifierConfig) -> torch.optim.Optimizer:
    """Adam or AdamW; with a ``backbone`` (every :class:`models.classifiers.Classifier`), two parameter groups:
    the backbone at ``lr × backbone_lr_mult`` and the rest (the new head) at ``lr``. Each group's
    ``base_lr`` is what :func:`lr_factor` scales."""
    backbone = getattr(model, "backbone", None)
    if isinstance(backbone, nn.Module) and config.backbone_lr_mult != 1.0:
        inner = {id(p) for p in backbone.parameters()}
        rest = [p for p in model.parameters() if id(p) not in inner]
        groups = [
            {"params": list(backbone.parameters()), "base_lr": config.lr * config.backbone_lr_mult},
            {"params": rest, "base_lr": config.lr},
        ]
    else:
        groups = [{"params": list(model.parameters()), "base_lr": config.lr}]
    groups = [g for g in groups if g["params"]]
    kind = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return kind(groups, lr=config.lr, weight_decay=config.weight_decay)


def _set_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against soft targets (rows summing to 1); equals the usual loss for one-hot rows."""
    return -(targets * torch.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()


_LIBC_TRIM = getattr(ctypes.CDLL(None), "malloc_trim", None) if sys.platform == "linux" else None


def release_freed_memory() -> None:
    """Collect garbage and hand the allocator's free pages back to the OS (glibc's ``malloc_trim(0)``; only the
    collection elsewhere), at the start and the end of a classifier's training.

    ``genmix run`` keeps freed heap by design (``cli/malloc.py``: no page faults per training step), but the
    heap a finished stage freed is scattered in holes that the next stage's larger tensors do not fit: at 128²
    RGB the DCGAN's training left 0.74 GB free in the heap and the classifier's training then grew it by 0.70 GB
    more (glibc ``malloc_stats``, docs/BENCHMARKS.md "Scale"). Trimming between the stages keeps the retained
    heap within each stage's own working set; a step inside a stage still reuses its heap."""
    gc.collect()
    if _LIBC_TRIM is not None:
        _LIBC_TRIM(0)


EVAL_BATCH_ATTR = "genmix_eval_batch_size"
"""Attribute :func:`train_classifier` sets on its model: the ``eval_batch_size`` later predictions use."""
DEFAULT_EVAL_BATCH = 256


def eval_batch_size(model: nn.Module, batch_size: int | None = None, image_shape: tuple[int, ...] = ()) -> int:
    """``batch_size`` if given, else the one the model was trained to evaluate with, else 256; capped by the
    pixel budget for images of ``image_shape`` (:func:`models.profiles.pixel_bounded_batch`: unchanged up to
    256 × 64² gray, 21 at 128² RGB), so evaluation's activations do not grow with the image size."""
    size = batch_size if batch_size is not None else getattr(model, EVAL_BATCH_ATTR, DEFAULT_EVAL_BATCH)
    if int(size) < 1:
        raise ValueError(f"eval batch size must be >= 1, got {size}")
    return pixel_bounded_batch(int(size), image_shape)


@torch.no_grad()
def predict(model: nn.Module, split: Split, device: torch.device, batch_size: int | None = None) -> np.ndarray:
    """Class probabilities (N, K) for a split, ``batch_size`` images at a time (default: the model's
    ``eval_batch_size`` from :func:`train_classifier`; either capped by the pixel budget, see
    :func:`eval_batch_size`)."""
    batch_size = eval_batch_size(model, batch_size, split.images.shape[1:])
    model.eval()
    probs = []
    for start in range(0, len(split), batch_size):
        x = to_tensor(split.images[start : start + batch_size], device)
        with autocast(device):
            probs.append(torch.softmax(model(x).float(), dim=1).cpu())
    return torch.cat(probs).numpy()


@torch.no_grad()
def extract_features(
    model: nn.Module, images: np.ndarray, device: torch.device, batch_size: int | None = None
) -> np.ndarray:
    """Penultimate features of uint8 (N, H, W, C) images, for t-SNE and quality measures (batches as
    :func:`predict`'s)."""
    batch_size = eval_batch_size(model, batch_size, images.shape[1:])
    model.eval()
    chunks = [
        model.features(to_tensor(images[s : s + batch_size], device)).float().cpu()
        for s in range(0, len(images), batch_size)
    ]
    return torch.cat(chunks).numpy()


def evaluate(
    model: nn.Module, split: Split, class_names: list[str], device: torch.device, batch_size: int | None = None
) -> dict[str, Any]:
    """Loss and all metrics of :func:`models.metrics.compute_metrics` on a split."""
    probs = predict(model, split, device, batch_size)
    metrics = compute_metrics(split.labels, probs, class_names)
    picked = np.clip(probs[np.arange(len(split)), split.labels], 1e-12, 1.0)
    metrics["loss"] = float(-np.log(picked).mean())
    return metrics


def _score(metrics: dict[str, Any], monitor: str) -> float:
    """Higher is better."""
    if monitor == "val_loss":
        return -metrics["loss"]
    value = metrics["auc"] if monitor == "val_auc" else metrics["macro_f1"]
    return float(value) if value is not None else -metrics["loss"]


@dataclass
class TrainResult:
    """The best model (restored), its epoch, and one history row per epoch."""

    model: nn.Module
    best_epoch: int
    epochs_trained: int
    history: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False


def train_classifier(
    model: nn.Module,
    arm: Arm,
    val: Split,
    class_names: list[str],
    config: ClassifierConfig,
    device: torch.device,
    hooks: TrainHooks | None = None,
) -> TrainResult:
    """Train with early stopping on ``config.monitor``; resume from ``hooks.checkpoint_dir`` when it has one."""
    hooks = hooks or TrainHooks()
    release_freed_memory()  # what earlier stages freed, before this one's working set (see the function)
    setattr(model, EVAL_BATCH_ATTR, config.eval_batch_size)  # predict()/evaluate() on this model honour it
    place_model(model, device)  # channels_last, cudnn.benchmark and TF32 on CUDA (models.runtime)
    optimizer = build_optimizer(model, config)
    augment = BatchAugment(config.augment, arm.seed, device)
    steps_per_epoch = -(-len(arm) // config.batch_size)
    average = (
        WeightAverage(model, decay_for(config.ema_half_life, steps_per_epoch)) if config.ema_half_life > 0 else None
    )
    scored = average.module if average is not None else model  # the weights validated, kept and tested
    state = _State(best=copy.deepcopy(scored.state_dict()))
    store = CheckpointDir(hooks.checkpoint_dir, keep=1) if hooks.checkpoint_dir else None
    if store is not None:
        state.restore(store, model, optimizer, arm, device, augment, average)

    total = config.epochs * steps_per_epoch
    if state.epoch > 0:
        hooks.resumed(state.epoch * steps_per_epoch, total)
    last_epoch = state.epoch if state.done else config.epochs
    for epoch in range(state.epoch, last_epoch):
        model.train()
        # The epoch's loss is summed on the device (float64): a step never waits for the device; the host
        # reads a loss only when a progress report is due (every REPORT_EVERY steps) and at the epoch's end.
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        steps = 0
        for step, (x, y) in enumerate(arm.epoch(config.batch_size)):
            hooks.check_cancel()
            _set_lr(optimizer, lr_factor(config, epoch * steps_per_epoch + step, steps_per_epoch))
            x = as_input(augment(x))
            with autocast(device):
                loss = soft_cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if average is not None:
                average.update(model)
            loss_sum += loss.detach()
            steps += 1
            if step % REPORT_EVERY == 0:
                hooks.progress(epoch * steps_per_epoch + step, total, {"loss": loss.item()})
        val_metrics = evaluate(scored, val, class_names, device)
        row = {
            "epoch": epoch + 1,
            "train_loss": loss_sum.item() / max(1, steps),
            "val_loss": val_metrics["loss"],
            "val_auc": val_metrics["auc"],
            "val_macro_f1": val_metrics["macro_f1"],
            "val_accuracy": val_metrics["accuracy"],
        }
        state.history.append(row)
        score = _score(val_metrics, config.monitor)
        if score > state.best_score:
            state.best_score, state.best_epoch, state.stale = score, epoch + 1, 0
            state.best = copy.deepcopy(scored.state_dict())
        else:
            state.stale += 1
        state.epoch = epoch + 1
        hooks.progress(state.epoch * steps_per_epoch, total, {"loss": row["train_loss"], "val_loss": row["val_loss"]})
        stop = state.stale >= config.patience
        if store is not None:
            state.save(store, model, optimizer, arm, stop, augment, average)
        if stop:
            break
    model.load_state_dict(state.best)
    del optimizer, augment, average, scored
    state.best = {}  # its weights are in the model now
    release_freed_memory()  # the training working set, before evaluation and figures
    return TrainResult(model, state.best_epoch, state.epoch, state.history, stopped_early=state.epoch < config.epochs)


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters(), torch.empty(0)).device


def _global_rng_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """torch's global RNG (dropout draws from it): the CPU's and, on CUDA, the model's device's."""
    states = {"rng/torch": torch.get_rng_state()}
    device = _model_device(model)
    if device.type == "cuda":
        states["rng/torch_cuda"] = torch.cuda.get_rng_state(device)
    return states


def _restore_global_rng(tensors: dict[str, torch.Tensor], model: nn.Module) -> None:
    """Inverse of :func:`_global_rng_state`, so the epochs after a resume draw what an unbroken run draws."""
    if "rng/torch" in tensors:
        torch.set_rng_state(tensors["rng/torch"].cpu())
    device = _model_device(model)
    if "rng/torch_cuda" in tensors and device.type == "cuda":
        torch.cuda.set_rng_state(tensors["rng/torch_cuda"].cpu(), device)


@dataclass
class _State:
    """Everything an epoch boundary must carry across a crash."""

    best: dict[str, torch.Tensor]
    epoch: int = 0
    best_epoch: int = 0
    best_score: float = float("-inf")
    stale: int = 0
    done: bool = False
    history: list[dict[str, float]] = field(default_factory=list)

    def save(
        self,
        store: CheckpointDir,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        arm: Arm,
        done: bool,
        augment: BatchAugment,
        average: WeightAverage | None = None,
    ) -> None:
        opt_tensors, opt_meta = optimizer_state(optimizer, "optimizer")
        tensors = {
            **prefixed("model", model.state_dict()),
            **(prefixed("average", average.module.state_dict()) if average is not None else {}),
            **prefixed("best", self.best),
            **opt_tensors,
            "rng/arm": arm.rng.get_state(),
            "rng/arm_cpu": arm.cpu_rng.get_state(),
            "rng/augment": augment.get_state(),
            **_global_rng_state(model),
        }
        if hasattr(arm, "mixer"):
            tensors["rng/mixer"] = arm.mixer.generator.get_state()
        meta = {
            "optimizer": opt_meta,
            "epoch": self.epoch,
            "best_epoch": self.best_epoch,
            "best_score": self.best_score,
            "stale": self.stale,
            "history": self.history,
            "done": done,
        }
        store.save(self.epoch, tensors, meta)

    def restore(
        self,
        store: CheckpointDir,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        arm: Arm,
        device: torch.device,
        augment: BatchAugment,
        average: WeightAverage | None = None,
    ) -> None:
        ckpt = store.latest(device)
        if ckpt is None:
            return
        model.load_state_dict(unprefixed("model", ckpt.tensors))
        if average is not None:
            average.module.load_state_dict(unprefixed("average", ckpt.tensors))
        self.best = unprefixed("best", ckpt.tensors)
        load_optimizer_state(optimizer, "optimizer", ckpt.tensors, ckpt.meta["optimizer"])
        # Device-side RNGs resume exactly on the device kind that wrote them, else reseed (models.checkpoint).
        epoch_seed = arm.seed + 1_000_003 * int(ckpt.meta["epoch"])
        restore_rng(arm.rng, ckpt.tensors["rng/arm"], epoch_seed)
        arm.cpu_rng.set_state(ckpt.tensors["rng/arm_cpu"].cpu())
        if "rng/mixer" in ckpt.tensors and hasattr(arm, "mixer"):
            restore_rng(arm.mixer.generator, ckpt.tensors["rng/mixer"], epoch_seed + 1)
        if "rng/augment" in ckpt.tensors:
            restore_rng(augment.generator, ckpt.tensors["rng/augment"], epoch_seed + 2)
        _restore_global_rng(ckpt.tensors, model)
        self.epoch = int(ckpt.meta["epoch"])
        self.best_epoch = int(ckpt.meta["best_epoch"])
        self.best_score = float(ckpt.meta["best_score"])
        self.stale = int(ckpt.meta["stale"])
        self.history = list(ckpt.meta["history"])
        self.done = bool(ckpt.meta.get("done"))
