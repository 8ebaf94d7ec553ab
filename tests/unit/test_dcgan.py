"""Class-conditional DCGAN: real tiny networks, a few dozen steps each, on BreastMNIST or drawn shapes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from generator_support import Recorder, assert_varied_class_samples
from support.data import first_per_class

from models.checkpoint import CheckpointDir, load_optimizer_state, optimizer_state, write_json
from models.datasets import ImageSet, Split
from models.generators import build_generator
from models.generators.dcgan import DCGAN, spatial_plan
from models.hooks import TrainHooks


def shapes(n_per_class: int, size: int, channels: int, num_classes: int = 2, seed: int = 0) -> Split:
    """Class k = a bright disc (k even) or square (k odd) of random place and size on a noisy background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, labels = [], []
    for k in range(num_classes):
        for _ in range(n_per_class):
            cy, cx = rng.uniform(0.3, 0.7, 2) * size
            r = rng.uniform(0.15, 0.3) * size
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2 if k % 2 == 0 else (abs(yy - cy) < r) & (abs(xx - cx) < r)
            img = rng.normal(40, 10, (size, size)) + 170 * mask
            img = np.repeat(img[..., None], channels, axis=-1)
            if channels == 3:
                img[..., k % 3] *= 0.5  # classes differ in colour too
            images.append(np.clip(img, 0, 255).astype(np.uint8))
            labels.append(k)
    return Split(np.stack(images), np.array(labels, dtype=np.int64))


def tiny(**overrides) -> dict:
    return {"iterations": 20, "log_every": 5, **overrides}


def test_spatial_plan_covers_the_sizes_the_service_accepts() -> None:
    assert spatial_plan(28) == (7, 2)
    assert spatial_plan(32) == (4, 3)
    assert spatial_plan(64) == (4, 4)
    assert spatial_plan(128) == (4, 5)
    for bad in (30, 17, 9, 3):
        with pytest.raises(ValueError, match="cannot build"):
            spatial_plan(bad)


def test_profiles_share_keys_and_paper_matches_section_3() -> None:
    keys = {name: set(p) for name, p in DCGAN.profiles.items()}
    assert keys["paper"] == keys["quick"] == keys["tiny"]
    paper = DCGAN.profiles["paper"]
    assert (paper["iterations"], paper["batch_size"], paper["lr"]) == (70_000, 8, 1e-3)
    assert (paper["beta1"], paper["beta2"]) == (0.5, 0.999)
    with pytest.raises(ValueError, match="unknown dcgan settings"):
        DCGAN(2, 1, (28, 28), config={"lr_typo": 1.0}, profile="tiny")


def test_short_run_on_breastmnist_gives_varied_class_conditional_samples(breast: ImageSet) -> None:
    train = breast.train.take(first_per_class(breast.train.labels, 24))  # 24 images of each class
    progress = Recorder()
    model = build_generator("dcgan", 2, 1, (28, 28), config=tiny(iterations=40), profile="tiny", seed=1)
    stats = model.fit(train, TrainHooks(progress=progress))
    assert progress.steps == [5, 10, 15, 20, 25, 30, 35, 40]  # every log_every steps, not every step
    assert all(total == 40 for _, total, _ in progress.calls)
    assert all(np.isfinite(v) for _, _, m in progress.calls for v in (m["loss_d"], m["loss_g"]))
    assert stats["steps"] == 40 and np.isfinite(stats["loss_d"]) and np.isfinite(stats["loss_g"])

    assert_varied_class_samples(model.sample([5, 7], seed=3), [5, 7], 28)


def test_generator_uses_the_class_label() -> None:
    model = DCGAN(3, 1, (28, 28), config=tiny(), profile="tiny", seed=0)
    model.fit(shapes(6, 28, 1, num_classes=3))
    z = torch.randn(4, model.config["z_dim"])
    with torch.no_grad():
        a = model.netG(z, torch.zeros(4, dtype=torch.long))
        b = model.netG(z, torch.full((4,), 2, dtype=torch.long))
    assert (a - b).abs().mean() > 1e-3


def test_same_seed_same_images_and_save_load_round_trip(tmp_path: Path) -> None:
    model = DCGAN(2, 1, (28, 28), config=tiny(), profile="tiny", seed=0)
    model.fit(shapes(12, 28, 1))
    first = model.sample([6, 6], seed=7)
    np.testing.assert_array_equal(first.images, model.sample([6, 6], seed=7).images)
    assert not np.array_equal(first.images, model.sample([6, 6], seed=8).images)

    model.save(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["config.json", "generator.safetensors"]
    meta = json.loads((tmp_path / "model" / "config.json").read_text())
    assert (meta["num_classes"], meta["channels"], meta["image_size"], meta["profile"]) == (
        2,
        1,
        [28, 28],
        "tiny",
    )
    loaded = DCGAN.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.sample([6, 6], seed=7).images, first.images)


def test_sampling_batches_do_not_change_the_images() -> None:
    model = DCGAN(2, 1, (28, 28), config=tiny(sample_batch_size=5), profile="tiny", seed=0)
    model.fit(shapes(12, 28, 1))
    small_batches = model.sample([7, 6], seed=2).images
    model.config["sample_batch_size"] = 64
    np.testing.assert_allclose(model.sample([7, 6], seed=2).images, small_batches, atol=1)


def test_resume_ignores_an_uncommitted_checkpoint(tmp_path: Path) -> None:
    train = shapes(8, 28, 1)
    ckpt_dir = tmp_path / "ckpt"
    DCGAN(2, 1, (28, 28), config=tiny(iterations=10), profile="tiny").fit(train, TrainHooks(checkpoint_dir=ckpt_dir))
    (ckpt_dir / "ckpt-00000015.safetensors").write_bytes(b"torn write")  # no JSON mark: never committed
    assert CheckpointDir(ckpt_dir).latest().step == 10
    resumed = DCGAN(2, 1, (28, 28), config=tiny(iterations=12), profile="tiny")
    assert resumed.fit(train, TrainHooks(checkpoint_dir=ckpt_dir))["trained_steps"] == 2


def test_optimizer_state_round_trips_through_tensors_and_json(tmp_path: Path) -> None:
    model = DCGAN(2, 1, (28, 28), config=tiny(iterations=3), profile="tiny")
    model.fit(shapes(4, 28, 1))
    tensors, meta = optimizer_state(model.opt_d, "opt")
    write_json(tmp_path / "meta.json", meta)
    fresh = torch.optim.Adam(model.netD.parameters(), lr=0.5)
    load_optimizer_state(fresh, "opt", tensors, json.loads((tmp_path / "meta.json").read_text()))
    before, after = model.opt_d.state_dict(), fresh.state_dict()
    assert after["param_groups"][0]["lr"] == before["param_groups"][0]["lr"]
    for pid, entry in before["state"].items():
        for key, value in entry.items():
            torch.testing.assert_close(after["state"][pid][key], value)


def test_needs_square_images() -> None:
    with pytest.raises(ValueError, match="square"):
        DCGAN(2, 1, (28, 32), profile="tiny")


def test_hinge_loss_flips_and_label_smoothing_train() -> None:
    config = tiny(iterations=10, loss="hinge", hflip=True, balanced=False, label_smoothing=0.1)
    stats = DCGAN(2, 1, (28, 28), config=config, profile="tiny").fit(shapes(6, 28, 1))
    assert np.isfinite(stats["loss_d"]) and np.isfinite(stats["loss_g"])
