"""The classifier loop: soft-target loss, learning, early stopping, resume from checkpoint, cancellation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from support.hooks import stop_after

from models.arms import build_arm
from models.averaging import WeightAverage, decay_for
from models.classifiers import build_classifier
from models.datasets import Split
from models.hooks import Cancelled, TrainHooks
from models.train import build_optimizer, classifier_config, evaluate, lr_factor, soft_cross_entropy, train_classifier

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


def test_resume_after_a_kill_equals_an_unbroken_run(tmp_path) -> None:
    """Killed in epoch 4 and resumed, training ends exactly where an unbroken run ends: dropout draws from torch's
    global RNG, whose state each epoch's checkpoint carries (as the arm's and the mixer's)."""
    unbroken = _run(epochs=6)
    steps_per_epoch = 4
    with pytest.raises(Cancelled):
        _run(epochs=6, hooks=TrainHooks(checkpoint_dir=tmp_path, should_stop=stop_after(3 * steps_per_epoch + 2)))
    resumed = _run(epochs=6, hooks=TrainHooks(checkpoint_dir=tmp_path))  # a fresh process would seed the same way
    assert resumed.history == unbroken.history
    assert resumed.best_epoch == unbroken.best_epoch
    weights = resumed.model.state_dict()
    for name, tensor in unbroken.model.state_dict().items():
        assert torch.equal(tensor, weights[name]), name


FINE_TUNE = {
    "optimizer": "adamw",
    "weight_decay": 0.05,
    "schedule": "cosine",
    "warmup_epochs": 1,
    "backbone_lr_mult": 0.1,
    "augment": ["hflip", "shift", "rotate"],
    "ema_half_life": 0.5,
}


def test_warmup_then_cosine_learning_rate() -> None:
    config = classifier_config("quick", {"epochs": 4, "warmup_epochs": 1, "schedule": "cosine"})
    factors = [lr_factor(config, step, steps_per_epoch=4) for step in range(16)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4] == 1.0 and factors[-1] < 0.05
    assert all(a >= b for a, b in zip(factors[3:], factors[4:], strict=False))
    constant = classifier_config("quick")
    assert {lr_factor(constant, step, 4) for step in range(16)} == {1.0}


def test_the_backbone_learns_at_a_lower_rate_than_the_head() -> None:
    model = build_classifier("smallcnn", 1, 2, (12, 12))
    optimizer = build_optimizer(model, classifier_config("quick", {**FINE_TUNE, "lr": 1e-3}))
    assert isinstance(optimizer, torch.optim.AdamW)
    backbone, rest = optimizer.param_groups
    assert backbone["base_lr"] == pytest.approx(1e-4) and rest["base_lr"] == pytest.approx(1e-3)
    assert {id(p) for p in rest["params"]} == {id(p) for p in model.head.parameters()}
    plain = build_optimizer(model, classifier_config("quick"))
    assert type(plain) is torch.optim.Adam and len(plain.param_groups) == 1


def _fine_tune(epochs: int, hooks: TrainHooks | None = None, seed: int = 0):
    torch.manual_seed(seed)
    model = build_classifier("smallcnn", 1, 2, (12, 12))
    config = classifier_config("quick", {**FINE_TUNE, "epochs": epochs, "batch_size": 16, "patience": 50})
    arm = build_arm("baseline", TRAIN, 2, CPU, seed=seed)
    return train_classifier(model, arm, VAL, NAMES, config, CPU, hooks)


def test_a_resumed_fine_tuning_run_equals_an_uninterrupted_one(tmp_path) -> None:
    """Warm-up, cosine, two parameter groups, augmentation and the weight EMA: a run killed in epoch 3 and resumed
    from its checkpoint repeats the unbroken run exactly (the lr is a function of the step, the augmenter's RNG and
    the averaged weights are saved)."""
    unbroken = _fine_tune(epochs=4)
    with pytest.raises(Cancelled):
        _fine_tune(epochs=4, hooks=TrainHooks(checkpoint_dir=tmp_path, should_stop=stop_after(9)))
    resumed = _fine_tune(epochs=4, hooks=TrainHooks(checkpoint_dir=tmp_path))
    assert resumed.history == unbroken.history
    weights = resumed.model.state_dict()
    for name, tensor in unbroken.model.state_dict().items():
        assert torch.equal(tensor, weights[name]), name


def test_augmentation_changes_training_but_not_the_arms_draws() -> None:
    runs = {}
    for augment in ([], FINE_TUNE["augment"]):
        torch.manual_seed(0)
        arm = build_arm("baseline", TRAIN, 2, CPU, seed=0)
        config = classifier_config("quick", {"epochs": 2, "batch_size": 16, "augment": augment})
        result = train_classifier(build_classifier("smallcnn", 1, 2, (12, 12)), arm, VAL, NAMES, config, CPU)
        runs[bool(augment)] = (result.history, arm.rng.get_state())
    assert runs[True][0] != runs[False][0]
    assert torch.equal(runs[True][1], runs[False][1])  # the same shuffles: the augmenter draws from its own RNG


def test_bad_fine_tuning_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown optimizer"):
        classifier_config("quick", {"optimizer": "sgd"})
    with pytest.raises(ValueError, match="unknown augment"):
        classifier_config("quick", {"augment": ["cutout"]})
    with pytest.raises(ValueError, match="no ImageNet weights"):
        classifier_config("quick", {"pretrained": True})  # smallcnn
    assert classifier_config("pretrained").name == "efficientnet_lite0"


def test_the_weight_average_follows_the_model_with_the_half_life_asked_for() -> None:
    assert decay_for(2.0, 10) ** 20 == pytest.approx(0.5)  # 2 epochs of 10 steps halve the old weights' share
    model = build_classifier("smallcnn", 1, 2, (12, 12))
    average = WeightAverage(model, decay=0.75)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
        for buffer in model.buffers():
            buffer.add_(4 if buffer.is_floating_point() else 3)
    average.update(model)
    now = model.state_dict()
    for name, tensor in average.module.state_dict().items():
        if tensor.is_floating_point():
            assert torch.allclose(tensor, 0.75 * before[name] + 0.25 * now[name]), name
        else:
            assert torch.equal(tensor, now[name]), name  # BatchNorm's batch counter is copied, not averaged


def test_with_the_average_the_kept_weights_are_the_averaged_ones() -> None:
    """Validation scores the averaged weights and the restored model is the best epoch's average: the run differs
    from one without it in its validation rows but not in its training losses (the same trajectory)."""
    runs = {}
    for ema in (0.0, 1.0):
        torch.manual_seed(0)
        config = classifier_config("quick", {"epochs": 3, "batch_size": 16, "ema_half_life": ema, "lr": 3e-3})
        arm = build_arm("baseline", TRAIN, 2, CPU, seed=0)
        runs[ema] = train_classifier(build_classifier("smallcnn", 1, 2, (12, 12)), arm, VAL, NAMES, config, CPU)
    plain, averaged = runs[0.0].history, runs[1.0].history
    assert [r["train_loss"] for r in plain] == [r["train_loss"] for r in averaged]
    assert [r["val_loss"] for r in plain] != [r["val_loss"] for r in averaged]
    kept = runs[1.0]
    assert evaluate(kept.model, VAL, NAMES, CPU)["loss"] == pytest.approx(averaged[kept.best_epoch - 1]["val_loss"])
