"""Generator quality measures: KID, the diversity (mode-collapse) ratio and the memorisation check."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.datasets import ImageSet, Split
from models.quality import (
    PRETRAINED_NET_NAME,
    diversity,
    flat_pixels,
    kid,
    memorisation,
    pretrained_features,
    quality_report,
    random_convnet_features,
)


def _gauss(n: int, d: int, shift: float = 0.0, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(shift, 1.0, (n, d))


def test_kid_is_near_zero_for_one_distribution_and_grows_with_the_shift() -> None:
    real = _gauss(300, 16, seed=0)
    same = kid(real, _gauss(300, 16, seed=1), subset_size=100, num_subsets=50)
    near = kid(real, _gauss(300, 16, shift=0.3, seed=2), subset_size=100, num_subsets=50)
    far = kid(real, _gauss(300, 16, shift=1.0, seed=3), subset_size=100, num_subsets=50)
    assert abs(same["kid_mean"]) < 3 * same["kid_std"] + 1e-3  # unbiased: centred on 0
    assert same["kid_mean"] < near["kid_mean"] < far["kid_mean"]
    assert near["kid_mean"] > 5 * same["kid_std"]
    assert same["kid_subset_size"] == 100 and same["kid_subsets"] == 50


def test_kid_unbiased_estimator_matches_the_textbook_formula() -> None:
    x, y = _gauss(6, 3, seed=4), _gauss(6, 3, shift=0.5, seed=5)

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return float((a @ b / 3 + 1) ** 3)

    m = 6
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    result = kid(x, y, subset_size=6, num_subsets=3)  # subset = whole set: every draw is the same estimate
    assert result["kid_mean"] == pytest.approx(xx + yy - 2 * xy, rel=1e-9)
    assert result["kid_std"] == pytest.approx(0.0, abs=1e-9)


def test_kid_caps_the_subset_at_small_sets_and_refuses_too_few() -> None:
    assert kid(_gauss(40, 4), _gauss(25, 4, seed=1))["kid_subset_size"] == 25
    with pytest.raises(ValueError, match="at least 2"):
        kid(_gauss(40, 4), _gauss(1, 4))
    with pytest.raises(ValueError, match="equal D"):
        kid(_gauss(10, 4), _gauss(10, 5))


def test_diversity_ratio_flags_a_collapsed_class() -> None:
    real = _gauss(200, 8, seed=0)
    labels = np.repeat([0, 1], 100)
    healthy = _gauss(200, 8, seed=1)
    collapsed = healthy.copy()
    collapsed[100:] = collapsed[100] + 0.01 * _gauss(100, 8, seed=2)  # class 1: one pattern, repeated
    ok = diversity(real, labels, healthy, labels, num_classes=2)
    bad = diversity(real, labels, collapsed, labels, num_classes=2)
    assert 0.9 < ok["diversity_ratio"] < 1.1
    assert bad["diversity_per_class"]["0"]["ratio"] == pytest.approx(ok["diversity_per_class"]["0"]["ratio"])
    assert bad["diversity_per_class"]["1"]["ratio"] < 0.05
    assert bad["diversity_min_ratio"] < 0.05


def test_memorisation_separates_copies_from_new_draws() -> None:
    train = _gauss(200, 32, seed=0)
    holdout = _gauss(200, 32, seed=1)
    fresh = memorisation(train, _gauss(200, 32, seed=2), holdout)
    copies = train[:50] + 1e-3 * _gauss(50, 32, seed=3)
    copied = memorisation(train, np.concatenate([copies, _gauss(150, 32, seed=4)]), holdout)
    assert fresh["memorised_share"] < 0.15  # about the 5 % a true new draw scores
    assert fresh["closer_than_any_real_share"] < 0.02
    assert copied["memorised_share"] >= 0.25
    assert copied["closer_than_any_real_share"] >= 0.25
    assert {c["synthetic"] for c in copied["closest"]} <= set(range(50))
    assert all(c["train"] == c["synthetic"] for c in copied["closest"])
    assert copied["memorisation_reference"] == "holdout-to-train"
    no_holdout = memorisation(train, copies)
    assert no_holdout["memorisation_reference"].startswith("train-to-train")
    assert no_holdout["memorised_share"] == 1.0


def test_random_convnet_features_are_fixed_and_take_gray_and_rgb() -> None:
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (5, 28, 28, 1), dtype=np.uint8)
    rgb = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    a, b = random_convnet_features(gray), random_convnet_features(gray)
    assert a.shape == (5, 512) and np.array_equal(a, b)
    assert random_convnet_features(rgb).shape == (5, 512)
    assert not np.allclose(random_convnet_features(gray, seed=1), a)
    assert a.std(axis=0).mean() > 0  # images differ in feature space


def test_quality_report_on_breastmnist_is_json_ready_and_catches_copies(breast: ImageSet) -> None:
    train = breast.train
    rng = np.random.default_rng(0)
    # 30 test images per class: the pretrained feature network costs ~0.08 CPU s per image
    keep = np.concatenate([np.flatnonzero(breast.test.labels == k)[:30] for k in (0, 1)])
    test = Split(breast.test.images[keep], breast.test.labels[keep])
    pick = np.concatenate([rng.choice(np.flatnonzero(train.labels == k), 30, replace=False) for k in (0, 1)])
    copies = Split(train.images[pick], train.labels[pick])
    noise = Split(rng.integers(0, 256, copies.images.shape, dtype=np.uint8), copies.labels)
    copied = quality_report(train, test, copies, num_classes=2, subset_size=50, num_subsets=20)
    noisy = quality_report(train, test, noise, num_classes=2, subset_size=50, num_subsets=20)
    json.dumps(copied)
    assert copied["feature_net"] == PRETRAINED_NET_NAME
    assert PRETRAINED_NET_NAME == "efficientnet_lite0 (ImageNet, frozen, 224 px, 1280-d pooled)"
    assert copied["memorised_share"] == 1.0 and noisy["memorised_share"] == 0.0
    assert copied["kid_mean"] < noisy["kid_mean"]
    assert set(copied["kid_per_class"]) == {"0", "1"}
    custom = quality_report(train, test, copies, 2, features=flat_pixels, feature_net="pixels", num_subsets=5)
    assert custom["feature_net"] == "pixels"


def test_pretrained_features_are_fixed_imagenet_features_of_any_image_size() -> None:
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (5, 28, 28, 1), dtype=np.uint8)
    a, b = pretrained_features(gray), pretrained_features(gray)
    assert a.shape == (5, 1280) and a.dtype == np.float64 and np.array_equal(a, b)
    rgb = rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    assert pretrained_features(rgb).shape == (3, 1280)
    assert pretrained_features(gray[:0]).shape == (0, 1280)
    # a gray image and its three-channel copy give the same features
    assert np.allclose(pretrained_features(np.repeat(gray, 3, axis=3)), a)
