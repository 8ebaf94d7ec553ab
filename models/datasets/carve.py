"""The one rule for splits a dataset does not bring: carved from train, stratified per class, seeded.

Every entrance (an uploaded zip or npz, a folder or npz on disk for ``genmix run`` and the workers) carves with
this function and its defaults, so the same images always get the same val and test split.

Rule: each missing split takes ``CARVE_PERCENT`` (15 %) of every class's training images, rounded half up and
at least one, so with both missing a class splits 70/15/15 (10 images: 6/2/2); with only val or only test
missing, that split takes its 15 % and train keeps 85 %. Images are drawn by one ``numpy`` generator seeded
with ``CARVE_SEED``, class by class in label order, val before test; every split keeps the source's order.
A class with fewer than one image per split it must fill (train included) is refused: see
:mod:`models.datasets.checks` for why each split needs every class.
"""

from __future__ import annotations

import numpy as np

from models.datasets.imageset import Split
from models.errors import DatasetError, clip
from models.names import SPLITS

CARVE_SEED = 0
CARVE_PERCENT = {"val": 15, "test": 15}
"""Per missing split, the percentage of each class's training images moved into it."""


def carve_counts(n: int, missing: list[str]) -> dict[str, int]:
    """How many of a class's ``n`` training images each missing split takes (integer maths, no float ties)."""
    return {name: max(1, (CARVE_PERCENT[name] * n + 50) // 100) for name in missing}


def carve_missing(
    parts: dict[str, Split], class_names: list[str], source: str, *, seed: int = CARVE_SEED
) -> dict[str, Split]:
    """``parts`` with val and test present (carved from train when absent), in train/val/test order."""
    missing = [name for name in ("val", "test") if name not in parts]
    if missing:
        train = parts["train"]
        rng = np.random.default_rng(seed)
        keep: list[np.ndarray] = []
        taken: dict[str, list[np.ndarray]] = {name: [] for name in missing}
        for k, class_name in enumerate(class_names):
            index = np.flatnonzero(train.labels == k)
            counts = carve_counts(len(index), missing)
            if len(index) <= sum(counts.values()):
                raise DatasetError(
                    f"{source}: class {clip(class_name)!r} has {len(index)} training image(s), too few to carve "
                    f"{' and '.join(missing)} from train: at least {len(missing) + 1} are needed, one per split "
                    "(missing splits are carved 70/15/15 per class)"
                )
            order = rng.permutation(index)
            start = 0
            for name in missing:
                taken[name].append(order[start : start + counts[name]])
                start += counts[name]
            keep.append(order[start:])
        parts = {**parts, "train": train.take(np.sort(np.concatenate(keep)))}
        parts.update({name: train.take(np.sort(np.concatenate(taken[name]))) for name in missing})
    return {name: parts[name] for name in SPLITS}
