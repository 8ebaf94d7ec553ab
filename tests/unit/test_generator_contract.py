"""What every trainable pixel generator promises the pipeline, checked on each with a real tiny network.

Learning a class signal, exact resume, cancel within one step, RGB and other sizes, and refusing data that
does not fit. Textual Inversion keeps the same checks in its own file (it needs a locally built pipeline).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from generator_support import Recorder, bright_dark
from support.hooks import stop_after

from models.checkpoint import CheckpointDir
from models.generators import Generator, generator_class
from models.hooks import Cancelled, TrainHooks


@dataclass(frozen=True)
class Spec:
    """How to make each check short for one generator."""

    steps_key: str  # the config key of the training length
    size: int  # image side for the quick checks
    learn: dict[str, Any]  # overrides for the class-signal check
    learn_size: int
    learn_per_class: int
    wider: dict[str, Any]  # an architecture change a checkpoint must refuse
    nets: tuple[str, ...]  # modules whose weights resume must reproduce exactly
    other_shapes: list[tuple[int, int]] = field(default_factory=list)  # (channels, size)


SPECS = {
    "dcgan": Spec(
        "iterations",
        28,
        {"iterations": 100, "lr": 2e-3},
        28,
        32,
        {"ngf": 16},
        ("netG", "netD"),
        [(3, 28), (3, 32), (1, 64)],
    ),
    "stylegan": Spec(
        "iterations",
        28,
        {"iterations": 150},
        28,
        16,
        {"fmap_base": 32, "fmap_max": 32},
        ("netG", "netD", "netG_ema"),
        [(3, 32), (1, 64)],
    ),
    "diffusion": Spec(
        "steps",
        16,
        {"steps": 60, "guidance_scale": 3.0},
        8,
        24,
        {"block_out_channels": [16, 16]},
        ("unet",),
        [(3, 28), (1, 20)],
    ),
}
NAMES = list(SPECS)


def make(
    name: str, steps: int | None = None, channels: int = 1, size: int | None = None, seed: int = 0, **config: Any
) -> Generator:
    """A tiny-profile generator of two classes; ``steps`` sets its training length."""
    spec = SPECS[name]
    side = size or spec.size
    cfg = {"log_every": 4, **({spec.steps_key: steps} if steps is not None else {}), **config}
    return generator_class(name)(2, channels, (side, side), config=cfg, profile="tiny", seed=seed)


@pytest.mark.parametrize("name", NAMES)
def test_learns_class_specific_brightness(name: str) -> None:
    """Class 0 bright, class 1 dark: after a short run, generated class 0 is clearly brighter than class 1."""
    spec = SPECS[name]
    model = make(name, size=spec.learn_size, **spec.learn)
    model.fit(bright_dark(spec.learn_per_class, spec.learn_size))
    out = model.sample([12, 12], seed=0)
    mean0, mean1 = out.images[:12].mean(), out.images[12:].mean()
    assert mean0 > mean1 + 40, (mean0, mean1)


@pytest.mark.parametrize("name", NAMES)
def test_resume_matches_an_unbroken_run_and_refuses_another_architecture(name: str, tmp_path: Path) -> None:
    spec = SPECS[name]
    train = bright_dark(6, spec.size)
    ckpt_dir = tmp_path / "ckpt"
    make(name, 8, seed=4, checkpoint_every=4).fit(train, TrainHooks(checkpoint_dir=ckpt_dir))
    assert CheckpointDir(ckpt_dir).steps() == [4, 8]
    assert not [p for p in ckpt_dir.iterdir() if p.name.endswith(".tmp")]

    progress = Recorder()
    resumed = make(name, 16, seed=4, checkpoint_every=4)
    stats = resumed.fit(train, TrainHooks(progress=progress, checkpoint_dir=ckpt_dir))
    assert progress.steps == [12, 16]
    assert stats["steps"] == 16 and stats["trained_steps"] == 8
    assert CheckpointDir(ckpt_dir).steps() == [12, 16]  # the newest two are kept

    unbroken = make(name, 16, seed=4)
    unbroken.fit(train)
    for net in spec.nets:
        for a, b in zip(getattr(resumed, net).parameters(), getattr(unbroken, net).parameters(), strict=True):
            assert torch.equal(a, b), net
    np.testing.assert_array_equal(resumed.sample([2, 2], seed=0).images, unbroken.sample([2, 2], seed=0).images)

    finished = make(name, 16, seed=4).fit(train, TrainHooks(checkpoint_dir=ckpt_dir))  # nothing left to train
    assert finished["trained_steps"] == 0
    for key in generator_class(name).loss_names:
        assert finished[key] == stats[key], key  # the last report travels with the checkpoint

    wider = make(name, 20, seed=4, **spec.wider)
    with pytest.raises(ValueError, match=next(iter(spec.wider))):
        wider.fit(train, TrainHooks(checkpoint_dir=ckpt_dir))


@pytest.mark.parametrize("name", NAMES)
def test_cancel_stops_within_one_step(name: str) -> None:
    progress = Recorder()
    model = make(name, 50, log_every=1)
    with pytest.raises(Cancelled):
        model.fit(bright_dark(4, SPECS[name].size), TrainHooks(progress=progress, should_stop=stop_after(5)))
    assert progress.steps == [1, 2, 3, 4, 5] and model.step == 5


@pytest.mark.parametrize(("name", "channels", "size"), [(n, c, s) for n in NAMES for c, s in SPECS[n].other_shapes])
def test_rgb_and_other_sizes(name: str, channels: int, size: int) -> None:
    model = make(name, 4, channels=channels, size=size, batch_size=4)
    stats = model.fit(bright_dark(4, size, channels))
    assert all(np.isfinite(stats[k]) for k in generator_class(name).loss_names)
    out = model.sample([3, 2], seed=0)
    assert out.images.shape == (5, size, size, channels) and out.images.dtype == np.uint8
    assert out.images.astype(float).std() > 1.0


@pytest.mark.parametrize("name", NAMES)
def test_rejects_data_and_requests_that_do_not_fit(name: str) -> None:
    model = make(name, 4)
    with pytest.raises(ValueError, match="model expects"):
        model.fit(bright_dark(4, SPECS[name].size + 4))
    with pytest.raises(ValueError, match="per_class"):
        model.sample([1, 2, 3])
    with pytest.raises(ValueError, match="unknown .* settings"):
        make(name, 4, no_such_setting=1)


@pytest.mark.parametrize("name", NAMES)
def test_sampling_stops_between_batches_when_asked(name: str) -> None:
    """Sampling after training is cancellable too (a diffusion model also between denoising steps)."""
    model = make(name, 4, sample_batch_size=2)
    stop = stop_after(1)
    with pytest.raises(Cancelled):
        model.sample([3, 3], seed=0, should_stop=stop)
    assert stop.asked == 2
