"""Image sets in memory: uint8 arrays per split and class names, the one shape every component shares.

Images are ``uint8`` arrays of shape ``(N, H, W, C)`` with ``C`` = 1 (gray) or 3 (RGB); labels are ``int64``
arrays of shape ``(N,)``. Torch-free, so the API validates uploads into the same types the workers train on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.errors import DatasetError


@dataclass(frozen=True)
class Split:
    """One split: ``images`` uint8 (N, H, W, C), ``labels`` int64 (N,), and optionally ``patients`` (N,).

    ``patients`` (one id per image, when every image's patient is known) lets carving keep a patient's images
    together. It lives in memory only: nothing stores or shows it (see :func:`models.datasets.save_npz`).
    """

    images: np.ndarray
    labels: np.ndarray
    patients: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] not in (1, 3):
            raise DatasetError(f"images must be uint8 (N, H, W, 1|3), got {self.images.dtype} {self.images.shape}")
        if self.labels.ndim != 1 or len(self.labels) != len(self.images):
            raise DatasetError(f"labels must be (N,) matching {len(self.images)} images, got {self.labels.shape}")
        if self.patients is not None and (self.patients.ndim != 1 or len(self.patients) != len(self.labels)):
            raise DatasetError(f"patients must be (N,) matching {len(self.labels)} images")
        # One memory layout whatever the entrance: a gray npz read as (N, H, W)[..., None] is a strided view,
        # and CPU kernels round differently on it, so the same images would train differently by entrance.
        # (numpy calls such a view contiguous, so compare the strides themselves.)
        n, h, w, c = self.images.shape
        if self.images.strides != (h * w * c, w * c, c, 1):
            object.__setattr__(self, "images", self.images.copy(order="C"))

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self, num_classes: int) -> list[int]:
        """Images per class, in class order."""
        return np.bincount(self.labels, minlength=num_classes).astype(int).tolist()

    def take(self, index: np.ndarray) -> Split:
        """The rows at ``index`` (a copy)."""
        return Split(self.images[index], self.labels[index], None if self.patients is None else self.patients[index])


@dataclass(frozen=True)
class ImageSet:
    """A classification data set with train / val / test splits."""

    name: str
    class_names: list[str]
    splits: dict[str, Split] = field(default_factory=dict)
    decode: dict[str, Any] | None = None
    """How pixels became images (window, multi-frame rule, ROI, normalisation, and images per rule), as the
    dataset record and every job's report keep it; ``None`` for npz files and plain image folders."""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_images(self) -> int:
        return sum(len(split) for split in self.splits.values())

    @property
    def channels(self) -> int:
        return int(self.splits["train"].images.shape[-1])

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width)."""
        h, w = self.splits["train"].images.shape[1:3]
        return int(h), int(w)

    @property
    def train(self) -> Split:
        return self.splits["train"]

    @property
    def val(self) -> Split:
        return self.splits["val"]

    @property
    def test(self) -> Split:
        return self.splits["test"]

    def counts(self) -> dict[str, list[int]]:
        """Per split, images per class."""
        return {name: split.counts(self.num_classes) for name, split in self.splits.items()}

    def patients(self) -> dict[str, int] | None:
        """Per split, the number of distinct patients; ``None`` unless every split knows its patients."""
        if not self.splits or any(split.patients is None for split in self.splits.values()):
            return None
        return {name: len(set(split.patients.tolist())) for name, split in self.splits.items()}  # type: ignore[union-attr]


def slice_imageset(imageset: ImageSet, per_split_max: int, seed: int = 0) -> ImageSet:
    """At most ``per_split_max`` images per split, stratified, keeping every class (for quick runs)."""
    rng = np.random.default_rng(seed)
    splits: dict[str, Split] = {}
    for name, split in imageset.splits.items():
        if len(split) <= per_split_max:
            splits[name] = split
            continue
        counts = np.bincount(split.labels, minlength=imageset.num_classes)
        present = np.flatnonzero(counts)
        if per_split_max < len(present):
            raise ValueError(f"per_split_max={per_split_max} cannot keep all {len(present)} classes of {name}")
        quota = _stratified_quota(counts, per_split_max)
        chosen = [rng.choice(np.flatnonzero(split.labels == k), size=int(quota[k]), replace=False) for k in present]
        splits[name] = split.take(np.sort(np.concatenate(chosen)))
    return ImageSet(imageset.name, list(imageset.class_names), splits, imageset.decode)


def _stratified_quota(counts: np.ndarray, total: int) -> np.ndarray:
    """Per-class sample sizes summing to ``total``: proportional, at least 1 for present classes, capped."""
    share = counts * (total / counts.sum())
    quota = np.where(counts > 0, np.maximum(np.floor(share), 1), 0).astype(np.int64)
    quota = np.minimum(quota, counts)
    order = np.argsort(-(share - np.floor(share)), kind="stable")
    while quota.sum() < total:  # hand out the remainder by largest fractional share
        for k in order:
            if quota.sum() < total and quota[k] < counts[k]:
                quota[k] += 1
    while quota.sum() > total:  # the at-least-one rule overshot: take back from the largest classes
        k = int(np.argmax(quota))
        quota[k] -= 1
    return quota
