"""Each arm yields soft-label batches of the right shape and content from the right pool."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.arms import ArmError, ArmSettings, build_arm
from models.datasets import Split
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
    """Each output is w·x_a + (1-w)·x_b with a, b from its own batch, one w per batch, the labels mixed by the
    same w; every image is the heavier parent once per epoch and the partners are a permutation of the batch.

    w is the heavier weight, max(λ, 1-λ): the check holds whichever parent ``mixup_batch`` gives λ to.
    """
    n, batch_size = 16, 8
    # image i lights pixel i alone: a mixed image names its two parents and their weights
    real = Split((np.eye(n, dtype=np.uint8) * 255).reshape(n, 4, 4, 1), np.arange(n) % 2)
    inputs = torch.eye(n, dtype=torch.float64)  # the images as the arm scales them (/255), flattened
    one_hot = torch.nn.functional.one_hot(torch.arange(n) % 2, 2).double()
    arm = build_arm("mixup", real, 2, CPU, seed=3, settings=ArmSettings(mixup_alpha=1.0))
    weights, heavy_parents, cross_class = [], [], 0
    for x, y in arm.epoch(batch_size):
        x, y = x.flatten(1).double(), y.double()
        assert x.shape == (batch_size, n) and y.shape == (batch_size, 2)
        top = x.topk(2, dim=1)
        heavy = top.indices[:, 0]
        light = torch.where(top.values[:, 1] > 1e-6, top.indices[:, 1], heavy)  # no second parent: mixed with itself
        mixed = light != heavy
        assert mixed.any()
        w = float(top.values[mixed, 0][0])  # the assert_close below holds every other output to the same w
        assert 0.5 < w < 1.0
        torch.testing.assert_close(x, w * inputs[heavy] + (1 - w) * inputs[light], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(y, w * one_hot[heavy] + (1 - w) * one_hot[light], rtol=1e-5, atol=1e-6)
        assert sorted(light.tolist()) == sorted(heavy.tolist()), "partners come from outside the batch"
        cross_class += int((light % 2 != heavy % 2).sum())
        weights.append(w)
        heavy_parents += heavy.tolist()
    assert sorted(heavy_parents) == list(range(n))  # one pass: every image once
    assert cross_class > 0  # some labels really are mixed (both parents of the same class would hide it)
    assert len(weights) == 2 and weights[0] != weights[1]  # a fresh λ per batch


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
