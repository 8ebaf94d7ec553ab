"""The one rule for splits a dataset does not bring: carved from train, stratified per class, seeded, and by
patient when every image's patient is known.

Every entrance (an uploaded zip or npz, a folder or npz on disk for ``genmix run`` and the workers) carves with
this function and its defaults, so the same images always get the same val and test split.

Rule: the rule moves *units*: a patient's training images when patients are known (every image has one,
``Split.patients``), else each image on its own. A unit belongs to the class most of its images have (ties:
the lowest label), so without patients a unit's class is its image's label. Each missing split takes
``CARVE_PERCENT`` (15 %) of every class's units, rounded half up and at least one, so with both missing a
class splits 70/15/15 (10 units: 6/2/2); with only val or only test missing, that split takes its 15 % and
train keeps 85 %. Units are drawn by one ``numpy`` generator seeded with ``CARVE_SEED``, class by class in
label order, val before test, from the units in order of first appearance; every split keeps the source's
order. So no patient is ever in two carved splits, and with one image per patient the patient rule and the
per-image rule carve exactly the same images. A class with fewer than one unit per split it must fill (train
included) is refused: see :mod:`models.datasets.checks` for why each split needs every class.
"""

from __future__ import annotations

import numpy as np

from models.datasets.imageset import Split
from models.errors import DatasetError, clip
from models.names import SPLITS

CARVE_SEED = 0
CARVE_PERCENT = {"val": 15, "test": 15}
"""Per missing split, the percentage of each class's training units (patients, else images) moved into it."""


def carve_counts(n: int, missing: list[str]) -> dict[str, int]:
    """How many of a class's ``n`` training units each missing split takes (integer maths, no float ties)."""
    return {name: max(1, (CARVE_PERCENT[name] * n + 50) // 100) for name in missing}


def carve_units(train: Split, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per training image its unit (0..U-1, numbered by first appearance), and per unit its class."""
    if train.patients is None:
        return np.arange(len(train.labels)), train.labels.copy()
    _, first, inverse = np.unique(train.patients.astype(str), return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    unit = rank[inverse.reshape(-1)]
    votes = np.zeros((len(first), max(num_classes, 1)), dtype=np.int64)
    np.add.at(votes, (unit, train.labels), 1)
    return unit, votes.argmax(axis=1)  # argmax takes the lowest label on a tie


def carve_missing(
    parts: dict[str, Split], class_names: list[str], source: str, *, seed: int = CARVE_SEED
) -> dict[str, Split]:
    """``parts`` with val and test present (carved from train when absent), in train/val/test order."""
    missing = [name for name in ("val", "test") if name not in parts]
    if missing:
        train = parts["train"]
        grouped = train.patients is not None
        unit, unit_class = carve_units(train, len(class_names))
        rng = np.random.default_rng(seed)
        keep: list[np.ndarray] = []
        taken: dict[str, list[np.ndarray]] = {name: [] for name in missing}
        for k, class_name in enumerate(class_names):
            members = np.flatnonzero(unit_class == k)
            counts = carve_counts(len(members), missing)
            if len(members) <= sum(counts.values()):
                what = "patient(s) in train" if grouped else "training image(s)"
                raise DatasetError(
                    f"{source}: class {clip(class_name)!r} has {len(members)} {what}, too few to carve "
                    f"{' and '.join(missing)} from train{' by patient' if grouped else ''}: at least "
                    f"{len(missing) + 1} are needed, one per split (missing splits are carved 70/15/15 per class"
                    f"{', whole patients at a time' if grouped else ''})"
                )
            order = rng.permutation(members)
            start = 0
            for name in missing:
                taken[name].append(order[start : start + counts[name]])
                start += counts[name]
            keep.append(order[start:])

        def images_of(units: list[np.ndarray]) -> np.ndarray:
            return np.flatnonzero(np.isin(unit, np.concatenate(units)))  # ascending: the source's order

        parts = {**parts, "train": train.take(images_of(keep))}
        parts.update({name: train.take(images_of(taken[name])) for name in missing})
    return {name: parts[name] for name in SPLITS}
