"""Helpers the generator tests share: a progress recorder and a two-class toy set a tiny model learns fast."""

from __future__ import annotations

import numpy as np

from models.datasets import Split


class Recorder:
    """Progress calls, as a list of (step, total, metrics)."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int, dict[str, float]]] = []

    def __call__(self, step: int, total: int, metrics: dict[str, float]) -> None:
        self.calls.append((step, total, dict(metrics)))

    @property
    def steps(self) -> list[int]:
        return [c[0] for c in self.calls]


def bright_dark(n: int, size: int, channels: int = 1, seed: int = 0) -> Split:
    """Class 0 bright, class 1 dark, with pixel noise: a class signal a tiny model learns in seconds."""
    rng = np.random.default_rng(seed)
    bright = rng.normal(200, 20, (n, size, size, channels))
    dark = rng.normal(50, 20, (n, size, size, channels))
    images = np.clip(np.concatenate([bright, dark]), 0, 255).astype(np.uint8)
    return Split(images, np.repeat(np.array([0, 1], dtype=np.int64), n))


def assert_varied_class_samples(out: Split, per_class: list[int], size: int, channels: int = 1) -> None:
    """uint8 images of the right shape, in class order, that differ between draws and are not flat."""
    count = sum(per_class)
    assert out.images.shape == (count, size, size, channels) and out.images.dtype == np.uint8
    assert out.labels.tolist() == [k for k, n in enumerate(per_class) for _ in range(n)]
    pixels = out.images.astype(np.float64)
    assert pixels.std(axis=0).mean() > 2.0, "samples do not vary between draws"
    assert pixels.reshape(count, -1).std(axis=1).min() > 2.0, "some sample is a flat image"
