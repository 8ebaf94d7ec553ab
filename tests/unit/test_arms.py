"""Each arm yields soft-label batches of the right shape and content from the right pool."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.arms import ArmError, ArmSettings, build_arm
from models.data import Split
from models.genmix import GenMixConfig


def _split(n: int, label_of, value: int) -> Split:
    images = np.full((n, 8, 8, 1), value, dtype=np.uint8)
    labels = np.array([label_of(i) for i in range(n)], dtype=np.int64)
    return Split(images, labels)


REAL = _split(20, lambda i: i % 2, 0)  # real images are all black
SYN = _split(10, lambda i: i % 2, 255)  # synthetic images are all white
CPU = torch.device("cpu")


def _all(arm, batch_size=8):
    xs, ys = zip(*arm.epoch(batch_size), strict=True)
    return torch.cat(xs), torch.cat(ys)


def test_baseline_is_one_pass_over_real_with_one_hot_labels() -> None:
    x, y = _all(build_arm("baseline", REAL, 2, CPU, seed=0))
    assert x.shape == (20, 1, 8, 8) and y.shape == (20, 2)
    assert torch.equal(y.sum(1), torch.ones(20)) and set(y.flatten().tolist()) == {0.0, 1.0}
    assert x.max() == 0.0


def test_generative_pool_is_real_plus_synthetic() -> None:
    arm = build_arm("generative", REAL, 2, CPU, seed=0, synthetic=SYN)
    x, _ = _all(arm)
    assert len(arm) == 30 and x.shape[0] == 30
    assert int((x.flatten(1).mean(1) == 1.0).sum()) == 10  # the ten white synthetic images appear once each


def test_genmix_blends_real_with_partners_and_soft_labels() -> None:
    settings = ArmSettings(genmix=GenMixConfig(alpha=0.3, pool="synthetic"))
    arm = build_arm("genmix", REAL, 2, CPU, seed=0, synthetic=SYN, settings=settings)
    x, y = _all(arm)
    assert len(arm) == 20 and x.shape == (20, 1, 8, 8)
    assert torch.allclose(y.sum(1), torch.ones(20))
    # black real + white synthetic partner: each pixel equals λ, which is Beta(0.3, 1) distributed in (0, 1)
    lam = x.flatten(1).mean(1)
    assert (lam > 0).all() and (lam < 1).all() and lam.std() > 0.01


def test_mixup_mixes_within_the_batch() -> None:
    real = Split(
        np.arange(16, dtype=np.uint8).reshape(16, 1, 1, 1).repeat(8, 1).repeat(8, 2) * 10,
        np.array([0, 1] * 8),
    )
    x, y = _all(build_arm("mixup", real, 2, CPU, seed=3, settings=ArmSettings(mixup_alpha=1.0)), batch_size=16)
    assert torch.allclose(y.sum(1), torch.ones(16))
    assert not torch.equal(x.flatten(1).mean(1).sort().values, torch.arange(16.0) * 10 / 255)


def test_augmix_changes_images_but_not_labels() -> None:
    rng = np.random.default_rng(0)
    real = Split(rng.integers(0, 255, (8, 16, 16, 3), dtype=np.uint8), np.array([0, 1] * 4))
    arm = build_arm("augmix", real, 2, CPU, seed=0)
    x, y = _all(arm)
    assert x.shape == (8, 3, 16, 16) and set(y.flatten().tolist()) == {0.0, 1.0}
    originals = torch.from_numpy(real.images).permute(0, 3, 1, 2).float() / 255
    assert not any(torch.allclose(x[i], originals[j]) for i in range(8) for j in range(8))


def test_same_seed_same_batches() -> None:
    a = _all(build_arm("genmix", REAL, 2, CPU, seed=5, synthetic=SYN))
    b = _all(build_arm("genmix", REAL, 2, CPU, seed=5, synthetic=SYN))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_generative_arms_need_synthetic_images_and_names_are_checked() -> None:
    with pytest.raises(ArmError, match="needs synthetic"):
        build_arm("genmix", REAL, 2, CPU, seed=0)
    with pytest.raises(ArmError, match="unknown arm 'cutmix'"):
        build_arm("cutmix", REAL, 2, CPU, seed=0)
