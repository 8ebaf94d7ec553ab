"""Small, real BreastMNIST slices: the first images of each class, per split."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

PerClass = int | Sequence[int]
SERVICE_SLICE: Mapping[str, PerClass] = {"train": 40, "val": 10, "test": 20}


def first_per_class(labels: np.ndarray, per_class: PerClass, num_classes: int | None = None) -> np.ndarray:
    """Indices of the first ``per_class[k]`` images of each class ``k``, class by class.

    ``per_class`` is one count for every class or a count per class; ``num_classes`` defaults to the
    length of that sequence, else to ``labels.max() + 1``.
    """
    labels = np.asarray(labels).reshape(-1)
    if isinstance(per_class, int):
        counts = [per_class] * (num_classes if num_classes is not None else int(labels.max()) + 1)
    else:
        counts = list(per_class)
    return np.concatenate([np.flatnonzero(labels == k)[:n] for k, n in enumerate(counts)])


def breast_slice(data_dir: Path, per_class: Mapping[str, PerClass] = SERVICE_SLICE) -> bytes:
    """An npz of the first images of each class for every split in ``per_class``, as the bytes of an upload.

    The default is 40 / 10 / 20 images per class (train / val / test).
    """
    with np.load(Path(data_dir) / "breastmnist.npz") as data:
        arrays = {key: data[key] for key in data.files}
    out: dict[str, np.ndarray] = {}
    for split, counts in per_class.items():
        index = first_per_class(arrays[f"{split}_labels"], counts)
        out[f"{split}_images"] = arrays[f"{split}_images"][index]
        out[f"{split}_labels"] = arrays[f"{split}_labels"][index]
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **out)
    return buffer.getvalue()
