"""The classifier loop: soft-target loss, learning, early stopping, resume from checkpoint, cancellation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from support.hooks import stop_after

from models.arms import build_arm
from models.classifiers import build_classifier
from models.datasets import Split
from models.hooks import Cancelled, TrainHooks
from models.train import classifier_config, soft_cross_entropy, train_classifier

CPU = torch.device("cpu")
NAMES = ["dark", "bright"]


def _easy(n: int, seed: int) -> Split:
    """Class 0 dark noise, class 1 bright noise: learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = rng.integers(0, 100, (n, 12, 12, 1)) + labels[:, None, None, None] * 120
    return Split(images.astype(np.uint8), labels.astype(np.int64))


TRAIN, VAL = _easy(64, 0), _easy(32, 1)


def _run(epochs: int, hooks: TrainHooks | None = None, patience: int = 50, seed: int = 0):
    torch.manual_seed(seed)
    model = build_classifier("smallcnn", 1, 2, (12, 12))
    config = classifier_config("quick", {"epochs": epochs, "batch_size": 16, "patience": patience, "lr": 3e-3})
    arm = build_arm("baseline", TRAIN, 2, CPU, seed=seed)
    return train_classifier(model, arm, VAL, NAMES, config, CPU, hooks)


def test_soft_cross_entropy_matches_hard_cross_entropy_on_one_hot() -> None:
    logits, labels = torch.randn(6, 3), torch.tensor([0, 1, 2, 2, 1, 0])
    assert torch.allclose(soft_cross_entropy(logits, F.one_hot(labels, 3).float()), F.cross_entropy(logits, labels))


def test_training_learns_an_easy_task_and_restores_the_best_epoch() -> None:
    result = _run(epochs=8)
    assert result.history[-1]["val_accuracy"] >= 0.9
    assert result.history[0]["train_loss"] > result.history[-1]["train_loss"]
    best = min(result.history, key=lambda row: row["val_loss"])
    assert result.best_epoch == best["epoch"]


def test_early_stopping_stops_after_patience_epochs_without_improvement() -> None:
    config = classifier_config("quick", {"epochs": 30, "batch_size": 16, "patience": 2, "lr": 0.5})
    model = build_classifier("smallcnn", 1, 2, (12, 12))
    result = train_classifier(model, build_arm("baseline", TRAIN, 2, CPU, 0), VAL, NAMES, config, CPU)
    assert result.stopped_early
    assert result.epochs_trained == result.best_epoch + 2


def test_resume_continues_from_the_checkpoint(tmp_path) -> None:
    first = _run(epochs=2, hooks=TrainHooks(checkpoint_dir=tmp_path))
    seen: list[int] = []
    hooks = TrainHooks(checkpoint_dir=tmp_path, progress=lambda step, total, m: seen.append(step))
    resumed = _run(epochs=4, hooks=hooks)
    assert len(resumed.history) == 4 and resumed.history[:2] == first.history
    steps_per_epoch = 4
    assert min(seen) >= 2 * steps_per_epoch  # no step of the first two epochs ran again


def test_cancel_stops_within_a_step() -> None:
    stop = stop_after(3)
    with pytest.raises(Cancelled):
        _run(epochs=5, hooks=TrainHooks(should_stop=stop))
    assert stop.asked == 4


def test_unknown_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown classifier settings"):
        classifier_config("quick", {"epoch": 3})
    with pytest.raises(ValueError, match="unknown monitor"):
        classifier_config("quick", {"monitor": "val_acc"})
