"""The checks every dataset passes, whichever entrance it came through (upload, CLI, worker).

Two layers: :func:`check_structure` (what the arrays must be before missing splits are carved) and
:func:`check_usable` (what a job needs afterwards). Usability rule: **every class has at least one image in each
of train, val and test** -- training needs each class, model selection reads val and the report is per class
on test (sensitivity, specificity, AUC), so a class missing from any split breaks a job hours in; here it is
refused at once, with the reason. (Carving refuses a class with too few training images for the same rule.)
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from models.datasets.imageset import ImageSet, Split
from models.errors import DatasetError, DatasetTooLargeError, clip
from models.names import SPLITS

MIN_CLASSES = 2


def check_class_names(source: str, names: list[str]) -> None:
    """At least two classes, names non-empty and unique."""
    if len(names) < MIN_CLASSES:
        raise DatasetError(
            f"{source}: a classification dataset needs at least {MIN_CLASSES} classes, found {len(names)}"
        )
    if not all(names):
        raise DatasetError(f"{source}: class names must be non-empty")
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        raise DatasetError(f"{source}: class names must be unique; repeated: {clip(repeated)}")


def check_structure(source: str, class_names: list[str], parts: dict[str, Split]) -> None:
    """Class names, a non-empty train split, no empty split, one image shape, labels 0..K-1, no patient in two
    splits, every class trained."""
    check_class_names(source, class_names)
    if "train" not in parts:
        raise DatasetError(f"{source}: wrong layout: there is no train split")
    for name in SPLITS:
        if name in parts and len(parts[name]) == 0:
            raise DatasetError(f"{source}: the {name} split has no images")
    shapes = {name: tuple(split.images.shape[1:]) for name, split in parts.items()}
    if len(set(shapes.values())) != 1:
        raise DatasetError(f"{source}: splits have different image shapes {shapes}")
    k = len(class_names)
    low = min(int(split.labels.min()) for split in parts.values())
    top = max(int(split.labels.max()) for split in parts.values())
    if low < 0:
        raise DatasetError(f"{source}: contains negative label {low}")
    if top >= k:
        raise DatasetError(f"{source}: label {top} is out of range for {k} class_names (labels are 0..K-1)")
    if top + 1 < k:
        raise DatasetError(
            f"{source}: {k} class names for {top + 1} classes (labels go up to {top}); give one name per class"
        )
    check_patients(source, parts)
    empty = [class_names[c] for c in np.flatnonzero(np.bincount(parts["train"].labels, minlength=k) == 0)]
    if empty:
        raise DatasetError(
            f"{source}: empty class: no training image for class(es) {clip(empty)}; every class needs at least one"
        )


def check_patients(source: str, parts: dict[str, Split]) -> None:
    """Patients known for every split or for none, and no patient in two splits (the leakage trap). Messages
    count patients, never name them."""
    known = [name for name, split in parts.items() if split.patients is not None]
    if known and len(known) != len(parts):
        raise DatasetError(f"{source}: patients are known for the {', '.join(known)} split(s) only; give all or none")
    seen: dict[str, set[str]] = {name: set(parts[name].patients.astype(str).tolist()) for name in known}  # type: ignore[union-attr]
    for i, a in enumerate(known):
        for b in known[i + 1 :]:
            shared = seen[a] & seen[b]
            if shared:
                raise DatasetError(
                    f"{source}: {len(shared)} patient(s) have images in both the {a} and the {b} split; a patient's "
                    "images must all be in one split"
                )


def check_usable(source: str, imageset: ImageSet) -> None:
    """The usability rule (module docstring): every class in each of train, val and test."""
    for name in SPLITS:
        if name not in imageset.splits:
            raise DatasetError(f"{source}: there is no {name} split")
        counts = imageset.splits[name].counts(imageset.num_classes)
        absent = [imageset.class_names[c] for c, n in enumerate(counts) if n == 0]
        if absent:
            raise DatasetError(
                f"{source}: class(es) {clip(absent)} have no images in the {name} split; a job needs every "
                "class in train, val and test (it selects models on val and reports each class on test)"
            )


class SizeGuard:
    """What every reader checks image by image: one size for all images, and the dataset's pixel budget."""

    def __init__(self, label: str, max_pixels: int | None) -> None:
        self.label, self.max_pixels = label, max_pixels
        self.first: tuple[tuple[int, int], str] | None = None
        self.pixels = 0

    def add(self, image: np.ndarray, where: str) -> None:
        if self.first is None:
            self.first = (image.shape[:2], where)
        elif image.shape[:2] != self.first[0]:
            (h, w), (fh, fw) = image.shape[:2], self.first[0]
            raise DatasetError(
                f"{where}: size {w}x{h} differs from {self.first[1]} ({fw}x{fh}); images differ in size: all "
                "must share one (an upload can set image_size to resize them)"
            )
        self.pixels += image.size
        if self.max_pixels is not None and self.pixels > self.max_pixels:
            raise DatasetTooLargeError(f"{self.label}: the dataset has more than {self.max_pixels} pixel values")
