"""Image sets in memory: uint8 arrays per split, class names, and the conversions every component shares.

Images are always stored as ``uint8`` arrays of shape ``(N, H, W, C)`` with ``C`` = 1 (gray) or 3 (RGB);
labels are ``int64`` arrays of shape ``(N,)``. Float tensors for models are ``(N, C, H, W)`` in ``[0, 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image

from models.errors import DatasetError
from models.runtime import DTYPE

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """One split: ``images`` uint8 (N, H, W, C), ``labels`` int64 (N,)."""

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] not in (1, 3):
            raise DatasetError(f"images must be uint8 (N, H, W, 1|3), got {self.images.dtype} {self.images.shape}")
        if self.labels.ndim != 1 or len(self.labels) != len(self.images):
            raise DatasetError(f"labels must be (N,) matching {len(self.images)} images, got {self.labels.shape}")

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self, num_classes: int) -> list[int]:
        """Images per class, in class order."""
        return np.bincount(self.labels, minlength=num_classes).astype(int).tolist()

    def take(self, index: np.ndarray) -> Split:
        """The rows at ``index`` (a copy)."""
        return Split(self.images[index], self.labels[index])


@dataclass(frozen=True)
class ImageSet:
    """A classification data set with train / val / test splits."""

    name: str
    class_names: list[str]
    splits: dict[str, Split] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return int(self.splits["train"].images.shape[-1])

    @property
    def image_size(self) -> tuple[int, int]:
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


def to_tensor(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (N, H, W, C) -> float (N, C, H, W) in [0, 1]."""
    tensor = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return tensor.permute(0, 3, 1, 2).to(DTYPE).div_(255.0)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float (N, C, H, W) in [0, 1] -> uint8 (N, H, W, C), rounding and clipping."""
    array = images.detach().float().clamp(0, 1).mul(255.0).round().to(torch.uint8)
    return array.permute(0, 2, 3, 1).cpu().numpy()


def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """int labels (N,) -> float one-hot (N, K)."""
    return torch.nn.functional.one_hot(labels.long(), num_classes).to(DTYPE)


# ---------------------------------------------------------------------------------------------------------
# Loading and saving. Every failure raises DatasetError naming the file and what was expected, because the
# people who hit these errors are lab users uploading their own data, not developers reading tracebacks.
# ---------------------------------------------------------------------------------------------------------

_NPZ_KEYS = tuple(f"{split}_{kind}" for split in SPLITS for kind in ("images", "labels"))
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_PIL_FORMATS = ["PNG", "JPEG"]
MAX_IMAGE_PIXELS = 1 << 26
"""Largest image (width x height) a folder loader decodes; checked from the header before decoding."""


def _open_npz(path: Path) -> dict[str, np.ndarray]:
    """Read every array of an npz without unpickling anything."""
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DatasetError(f"{path}: expected an .npz archive of arrays, found a single .npy array")
        with loaded as archive:
            return {key: archive[key] for key in archive.files}
    except DatasetError:
        raise
    except Exception as exc:  # zipfile, pickle refusal, truncated data: all mean "not a usable npz"
        raise DatasetError(f"{path}: not a readable .npz archive ({type(exc).__name__}: {exc})") from exc


def _as_images(path: Path, key: str, images: np.ndarray) -> np.ndarray:
    """(N, H, W) | (N, H, W, 1|3) uint8 -> (N, H, W, C) uint8."""
    if images.dtype != np.uint8:
        raise DatasetError(
            f"{path}: {key} must be uint8 (0-255) images, got dtype {images.dtype}; convert floats with "
            "np.round(x * 255).astype(np.uint8) first"
        )
    if images.ndim == 3:
        return images[..., None]
    if images.ndim == 4 and images.shape[-1] in (1, 3):
        return images
    raise DatasetError(f"{path}: {key} must have shape (N, H, W) or (N, H, W, 3), got {images.shape}")


def _as_labels(path: Path, key: str, labels: np.ndarray, count: int) -> np.ndarray:
    """(N,) | (N, 1) integers -> int64 (N,)."""
    if not np.issubdtype(labels.dtype, np.integer):
        raise DatasetError(f"{path}: {key} must be integer class indices, got dtype {labels.dtype}")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise DatasetError(
            f"{path}: {key} must have shape (N,) or (N, 1) (single-label classification), got {labels.shape}"
        )
    if len(labels) != count:
        raise DatasetError(f"{path}: {key} has {len(labels)} labels but there are {count} images")
    if count and labels.min() < 0:
        raise DatasetError(f"{path}: {key} contains negative label {int(labels.min())}")
    return labels.astype(np.int64)


MEDMNIST_CLASS_NAMES: dict[str, list[str]] = {
    "breastmnist": ["malignant", "normal/benign"],
    "pneumoniamnist": ["normal", "pneumonia"],
    "retinamnist": ["grade 0", "grade 1", "grade 2", "grade 3", "grade 4"],
}
"""The official MedMNIST label names, used when a file named after the set carries no ``class_names``."""


def _class_names(path: Path, arrays: dict[str, np.ndarray], max_label: int) -> list[str]:
    """Names from an optional ``class_names`` array, else MedMNIST's names for its files, else "0".."K-1"."""
    if "class_names" not in arrays:
        known = MEDMNIST_CLASS_NAMES.get(path.stem.split("_")[0].lower())
        if known is not None and len(known) == max_label + 1:
            return list(known)
        return [str(k) for k in range(max_label + 1)]
    names = arrays["class_names"]
    if names.ndim != 1 or names.dtype.kind not in "UO" or len(names) == 0:
        raise DatasetError(f"{path}: class_names must be a 1-D array of strings, got {names.dtype} {names.shape}")
    result = [str(name) for name in names.tolist()]
    if len(set(result)) != len(result):
        raise DatasetError(f"{path}: class_names has duplicates: {result}")
    if max_label >= len(result):
        raise DatasetError(
            f"{path}: label {max_label} is out of range for {len(result)} class_names (labels are 0..K-1)"
        )
    return result


def _check_imageset(path: Path, imageset: ImageSet) -> ImageSet:
    """Shared checks: one image shape across splits, no empty split, every class present in train."""
    shapes = {name: split.images.shape[1:] for name, split in imageset.splits.items()}
    if len(set(shapes.values())) != 1:
        raise DatasetError(f"{path}: splits have different image shapes {shapes}")
    for name, split in imageset.splits.items():
        if len(split) == 0:
            raise DatasetError(f"{path}: the {name} split has no images")
    missing = [imageset.class_names[k] for k, n in enumerate(imageset.counts()["train"]) if n == 0]
    if missing:
        raise DatasetError(f"{path}: no training image for class(es) {missing}; every class needs at least one")
    return imageset


def load_npz(path: str | Path) -> ImageSet:
    """A MedMNIST-layout npz (``{train,val,test}_{images,labels}``, optional ``class_names``)."""
    path = Path(path)
    arrays = _open_npz(path)
    missing = [key for key in _NPZ_KEYS if key not in arrays]
    if missing:
        raise DatasetError(f"{path}: missing arrays {missing}; expected MedMNIST layout {list(_NPZ_KEYS)}")
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split in SPLITS:
        images = _as_images(path, f"{split}_images", arrays[f"{split}_images"])
        labels = _as_labels(path, f"{split}_labels", arrays[f"{split}_labels"], len(images))
        parts[split] = (images, labels)
    max_label = max(int(labels.max()) for _, labels in parts.values() if len(labels))
    names = _class_names(path, arrays, max_label)
    imageset = ImageSet(path.stem, names, {split: Split(*pair) for split, pair in parts.items()})
    return _check_imageset(path, imageset)


def _decode_image(path: Path) -> np.ndarray:
    """One PNG/JPEG as uint8 (H, W, 1) for gray sources or (H, W, 3) for colour ones (alpha dropped)."""
    try:
        with Image.open(path, formats=_PIL_FORMATS) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise DatasetError(f"{path}: {width}x{height} exceeds the {MAX_IMAGE_PIXELS}-pixel limit")
            mode = image.mode
            if mode in ("1", "L", "LA"):
                return np.asarray(image.convert("L"))[..., None]
            if mode.startswith("I"):  # 16/32-bit gray (common for medical PNGs): rescale 0..65535 -> 0..255
                wide = np.asarray(image, dtype=np.int64).clip(0, 65535)
                return ((wide * 255 + 32767) // 65535).astype(np.uint8)[..., None]
            return np.asarray(image.convert("RGB"))
    except DatasetError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DatasetError(f"{path}: not a readable PNG/JPEG image ({exc})") from exc


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in _IMAGE_SUFFIXES
    )


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _stratified_carve(
    root: Path, labels: np.ndarray, index: np.ndarray, fraction: float, seed: int, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``index`` into (kept, carved) with ``fraction`` carved out, stratified by label and seeded."""
    if not 0.0 < fraction < 1.0:
        raise DatasetError(f"{root}: {what} fraction must be in (0, 1) to carve a {what} split, got {fraction}")
    from sklearn.model_selection import train_test_split  # local: sklearn is slow to import, rarely needed

    try:
        kept, carved = train_test_split(index, test_size=fraction, stratify=labels[index], random_state=seed)
    except ValueError as exc:
        raise DatasetError(
            f"{root}: too few images per class to carve a stratified {what} split of {fraction:.0%} ({exc})"
        ) from exc
    return np.sort(kept), np.sort(carved)


def load_image_folder(
    root: str | Path, seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.15
) -> ImageSet:
    """An image folder as an ImageSet: ``<split>/<class>/*.png|jpg|jpeg`` or ``<class>/*`` (split here).

    Missing val/test splits are carved from train, stratified by class and seeded, so the same folder
    and seed always give the same split; the fractions are of all images in the ``<class>/*`` layout and
    of the given train split otherwise. Class names are the sorted folder names.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such directory")
    top = {p.name: p for p in _class_dirs(root)}
    split_layout = "train" in top
    if split_layout:
        unknown = sorted(set(top) - set(SPLITS))
        if unknown:
            raise DatasetError(f"{root}: has train/ but also {unknown}; expected only train/, val/, test/")
        split_roots = {name: top[name] for name in SPLITS if name in top}
    else:
        split_roots = {"train": root}
    classes = sorted({d.name for folder in split_roots.values() for d in _class_dirs(folder)})
    if not classes:
        raise DatasetError(f"{root}: no class folders found; expected <class>/*.png or train/<class>/*.png")
    files: list[Path] = []
    labels: list[int] = []
    origin: list[str] = []
    for split, folder in split_roots.items():
        stray = _image_files(folder)
        if stray:
            raise DatasetError(f"{stray[0]}: image outside a class folder; expected {folder}/<class>/<image>")
        for class_dir in _class_dirs(folder):
            found = _image_files(class_dir)
            if not found and split == "train":
                raise DatasetError(f"{class_dir}: class folder has no .png/.jpg/.jpeg images")
            files += found
            labels += [classes.index(class_dir.name)] * len(found)
            origin += [split] * len(found)
    decoded: list[np.ndarray] = []
    for file in files:
        image = _decode_image(file)
        if decoded and image.shape[:2] != decoded[0].shape[:2]:
            raise DatasetError(
                f"{file}: size {image.shape[1]}x{image.shape[0]} differs from {files[0]} "
                f"({decoded[0].shape[1]}x{decoded[0].shape[0]}); all images must share one size"
            )
        decoded.append(image)
    channels = max(image.shape[-1] for image in decoded)
    images = np.stack([np.repeat(im, channels // im.shape[-1], axis=-1) for im in decoded])
    label_array = np.asarray(labels, dtype=np.int64)
    origin_array = np.asarray(origin)
    index = {split: np.flatnonzero(origin_array == split) for split in SPLITS}
    if "test" not in split_roots:
        index["train"], index["test"] = _stratified_carve(
            root, label_array, index["train"], test_fraction, seed, "test"
        )
    if "val" not in split_roots:
        share = val_fraction / (1.0 - test_fraction) if "test" not in split_roots else val_fraction
        index["train"], index["val"] = _stratified_carve(root, label_array, index["train"], share, seed, "val")
    splits = {split: Split(images[idx], label_array[idx]) for split, idx in index.items()}
    return _check_imageset(root, ImageSet(root.name, classes, splits))


def load_dataset(path: str | Path, seed: int = 0) -> ImageSet:
    """A data set from an ``.npz`` file (MedMNIST layout) or an image folder."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".npz":
        return load_npz(path)
    if path.is_dir():
        return load_image_folder(path, seed=seed)
    raise DatasetError(f"{path}: expected an .npz file or an image folder")


def _stored_images(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 1) -> (N, H, W) as MedMNIST stores gray; RGB unchanged."""
    return images[..., 0] if images.shape[-1] == 1 else images


def save_npz(imageset: ImageSet, path: str | Path) -> Path:
    """Write an ImageSet in MedMNIST layout (labels (N, 1)) plus ``class_names``."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {"class_names": np.asarray(imageset.class_names, dtype=str)}
    for name in SPLITS:
        split = imageset.splits[name]
        arrays[f"{name}_images"] = _stored_images(split.images)
        arrays[f"{name}_labels"] = split.labels.reshape(-1, 1)
    np.savez_compressed(path, **arrays)
    return path


def save_synthetic_npz(split: Split, path: str | Path | BinaryIO, class_names: list[str]) -> str | Path | BinaryIO:
    """Write generated images in the SYN format: ``images`` (N, H, W[, 3]) uint8, ``labels`` (N,), names.

    ``path`` may be an open binary file (e.g. a temporary file that is renamed into place afterwards).
    """
    np.savez_compressed(
        path,
        images=_stored_images(split.images),
        labels=split.labels.astype(np.int64),
        class_names=np.asarray(class_names, dtype=str),
    )
    return path


def load_synthetic_npz(path: str | Path, num_classes: int | None = None) -> Split:
    """Read a SYN-format npz; with ``num_classes``, labels outside 0..num_classes-1 are an error."""
    path = Path(path)
    arrays = _open_npz(path)
    missing = [key for key in ("images", "labels") if key not in arrays]
    if missing:
        raise DatasetError(f"{path}: missing arrays {missing}; expected 'images' and 'labels'")
    images = _as_images(path, "images", arrays["images"])
    labels = _as_labels(path, "labels", arrays["labels"], len(images))
    if num_classes is not None and len(labels) and int(labels.max()) >= num_classes:
        raise DatasetError(f"{path}: label {int(labels.max())} is out of range for {num_classes} classes")
    return Split(images, labels)


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
    return ImageSet(imageset.name, list(imageset.class_names), splits)


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
