"""MedMNIST-layout npz: arrays -> splits (read), splits -> arrays (write), and the synthetic-set format.

An npz is a zip of ``.npy`` members, so it is read through a :class:`~models.datasets.filetree.FileTree` like
an image folder: from disk or from an upload's budgeted archive, never unpickling anything. Each array is read
from its member's stream straight into its own buffer (:func:`read_npy_stream`): no copy of the member's bytes
is held beside it, so reading a set takes its decoded size once. Written sets are stored uncompressed
(``np.savez``): writing is then disk speed, where ``np.savez_compressed`` took 85–90 % of an upload request.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np

from models.datasets.filetree import FileTree, ZipTree
from models.datasets.imageset import ImageSet, Split
from models.datasets.npy import read_npy_stream
from models.datasets.options import ReadOptions
from models.errors import DatasetError, DatasetTooLargeError, clip
from models.medmnist import MEDMNIST_CLASS_NAMES
from models.names import SPLITS


def npz_arrays(tree: FileTree) -> dict[str, np.ndarray]:
    """Every ``.npy`` member of the tree as an array (``allow_pickle=False``)."""
    arrays: dict[str, np.ndarray] = {}
    for path in tree.files():
        if path.suffix != ".npy":
            raise DatasetError(
                f"{tree.label}: wrong layout: a .npz must contain only .npy arrays, found {tree.where(path)}"
            )
        key = str(path)[: -len(".npy")]
        try:
            arrays[key] = tree.read_array(path)
        except (ValueError, OSError, EOFError, MemoryError) as exc:
            raise DatasetError(
                f"{tree.label}: array {clip(key)!r} in the .npz cannot be read safely ({clip(exc)})"
            ) from None
    return arrays


def read_npy(data: bytes) -> np.ndarray:
    """One ``.npy`` file's array from its bytes (see :func:`~models.datasets.npy.read_npy_stream`)."""
    return read_npy_stream(io.BytesIO(data), len(data))


def open_npz(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of an npz file on disk."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    try:
        with zipfile.ZipFile(path) as archive:
            return npz_arrays(ZipTree(archive, label=str(path)))
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"{path}: not a readable .npz archive ({clip(exc)})") from None


def npz_parts(source: str, arrays: dict[str, np.ndarray], options: ReadOptions) -> dict[str, Split]:
    """The splits an npz brings; ``{split}_images`` and ``{split}_labels`` come in pairs, train is required."""
    if "train_images" not in arrays or "train_labels" not in arrays:
        absent = [key for key in ("train_images", "train_labels") if key not in arrays]
        raise DatasetError(
            f"{source}: missing arrays {absent}; a MedMNIST .npz needs train_images and train_labels "
            f"(val_* and test_* are carved from train when absent), found {clip(sorted(arrays)) or 'nothing'}"
        )
    parts: dict[str, Split] = {}
    pixels = 0
    for split in SPLITS:
        keys = [f"{split}_images", f"{split}_labels"]
        absent = [key for key in keys if key not in arrays]
        if len(absent) == 2:
            continue
        if absent:
            raise DatasetError(f"{source}: missing arrays {absent}; {keys[0]} and {keys[1]} must come together")
        images = _as_images(source, keys[0], arrays[keys[0]], options)
        labels = _as_labels(source, keys[1], arrays[keys[1]], len(images))
        if len(labels) and int(labels.max()) >= options.max_classes:
            raise DatasetError(
                f"{source}: {keys[1]} contains label {int(labels.max())}; at most {options.max_classes} classes "
                f"(labels 0..{options.max_classes - 1}) are allowed"
            )
        pixels += images.size
        if options.dataset_max_pixels is not None and pixels > options.dataset_max_pixels:
            raise DatasetTooLargeError(f"{source}: the dataset has more than {options.dataset_max_pixels} pixel values")
        parts[split] = Split(images, labels)
    return parts


def npz_class_names(source: str, name: str, arrays: dict[str, np.ndarray], parts: dict[str, Split]) -> list[str]:
    """The ``class_names`` array, else MedMNIST's names for a file named after its set, else ``"0".."K-1"``."""
    if "class_names" in arrays:
        names = arrays["class_names"]
        if names.ndim != 1 or names.dtype.kind not in "US" or len(names) == 0:
            raise DatasetError(f"{source}: class_names must be a 1-D array of strings, got {names.dtype} {names.shape}")
        return [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names.tolist()]
    top = max((int(split.labels.max()) for split in parts.values() if len(split)), default=0)
    known = MEDMNIST_CLASS_NAMES.get(name.split("_")[0].lower())
    if known is not None and len(known) == top + 1:
        return list(known)
    return [str(k) for k in range(top + 1)]


def _as_images(source: str, key: str, images: np.ndarray, options: ReadOptions) -> np.ndarray:
    """(N, H, W) | (N, H, W, 1|3) uint8 -> (N, H, W, C) uint8."""
    if images.dtype != np.uint8:
        raise DatasetError(
            f"{source}: {key} must be uint8 (0-255) images, got dtype {images.dtype}; convert floats with "
            "np.round(x * 255).astype(np.uint8) first"
        )
    if images.ndim == 3:  # a reshape keeps C strides (a [..., None] view would make the Split copy it)
        images = images.reshape(*images.shape, 1) if images.flags.c_contiguous else images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise DatasetError(f"{source}: {key} must have shape (N, H, W) or (N, H, W, 3), got {images.shape}")
    if images.shape[1] * images.shape[2] > options.image_max_pixels:
        raise DatasetError(
            f"{source}: {key} are {images.shape[2]}x{images.shape[1]}, over the {options.image_max_pixels} pixel limit"
        )
    return np.ascontiguousarray(images)


def _as_labels(source: str, key: str, labels: np.ndarray, count: int) -> np.ndarray:
    """(N,) | (N, 1) integers -> int64 (N,)."""
    if not np.issubdtype(labels.dtype, np.integer):
        raise DatasetError(f"{source}: {key} must be integer class indices, got dtype {labels.dtype}")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise DatasetError(
            f"{source}: {key} must have shape (N,) or (N, 1) (single-label classification; multi-label is "
            f"not supported), got {labels.shape}"
        )
    if len(labels) != count:
        raise DatasetError(f"{source}: {key} has {len(labels)} labels but there are {count} images")
    if count and labels.min() < 0:
        raise DatasetError(f"{source}: {key} contains negative label {int(labels.min())}")
    return labels.astype(np.int64)


# ------------------------------------------------------------------------------------------------- writing


def _stored_images(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 1) -> (N, H, W) as MedMNIST stores gray; RGB unchanged."""
    return images[..., 0] if images.shape[-1] == 1 else images


def _write(target: str | Path | BinaryIO, arrays: dict[str, np.ndarray], compress: bool = True) -> None:
    """``np.savez_compressed`` (or ``np.savez``) to exactly ``target`` (numpy would append ``.npz`` to other path
    names); either writes each array in 16 MiB pieces, never a second copy of it."""
    save = np.savez_compressed if compress else np.savez
    if isinstance(target, str | Path):
        with Path(target).open("wb") as handle:
            save(handle, **arrays)
    else:
        save(target, **arrays)


def save_npz(imageset: ImageSet, path: str | Path | BinaryIO, compress: bool = False) -> str | Path | BinaryIO:
    """Write an ImageSet in MedMNIST layout (gray as (N, H, W), labels (N, 1)) plus ``class_names``.

    This is the normalised form the service stores for every upload and the workers read back: uncompressed by
    default (disk speed; deflating a lab-sized set took most of an upload request, 23 s for 426 MB).
    """
    arrays: dict[str, np.ndarray] = {"class_names": np.asarray(imageset.class_names, dtype=str)}
    for name in SPLITS:
        split = imageset.splits[name]
        arrays[f"{name}_images"] = _stored_images(split.images)
        arrays[f"{name}_labels"] = split.labels.reshape(-1, 1)
    _write(path, arrays, compress)
    return path


def save_synthetic_npz(split: Split, path: str | Path | BinaryIO, class_names: list[str]) -> str | Path | BinaryIO:
    """Write generated images in the SYN format: ``images`` (N, H, W[, 3]) uint8, ``labels`` (N,), names.

    ``path`` may be an open binary file (e.g. a temporary file that is renamed into place afterwards).
    """
    arrays = {
        "images": _stored_images(split.images),
        "labels": split.labels.astype(np.int64),
        "class_names": np.asarray(class_names, dtype=str),
    }
    _write(path, arrays)
    return path


def load_synthetic_npz(path: str | Path, num_classes: int | None = None) -> Split:
    """Read a SYN-format npz; with ``num_classes``, labels outside 0..num_classes-1 are an error."""
    source = str(path)
    arrays = open_npz(path)
    missing = [key for key in ("images", "labels") if key not in arrays]
    if missing:
        raise DatasetError(f"{source}: missing arrays {missing}; expected 'images' and 'labels'")
    images = _as_images(source, "images", arrays["images"], ReadOptions())
    labels = _as_labels(source, "labels", arrays["labels"], len(images))
    if num_classes is not None and len(labels) and int(labels.max()) >= num_classes:
        raise DatasetError(f"{source}: label {int(labels.max())} is out of range for {num_classes} classes")
    return Split(images, labels)
