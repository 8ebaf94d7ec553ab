"""Validate an uploaded dataset (MedMNIST ``.npz`` or ImageFolder ``.zip``) and normalise it (numpy, Pillow).

Nothing here trusts the archive: every zip member is checked (no ``..``, no absolute path, no symlink or
other special file, no encryption, member count, total uncompressed size, per-member compression ratio)
before any byte is read, and bytes are then read through a budget rather than trusting headers. Images are
opened with an explicit format allow-list, their header size is checked against our own pixel cap before
decoding, and every image is fully decoded, so a truncated or corrupt file is caught here, not in a worker.
Every failure raises :class:`UploadError` with an HTTP status and a message that names the problem.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from models.names import SPLITS

SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                 "test": "test", "testing": "test"}  # fmt: skip
IGNORED_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}
CARVE_FRACTIONS = {"val": 0.1, "test": 0.2}
"""Fractions of each class moved out of ``train`` when an upload has no ``val`` / ``test`` split."""
_READ_CHUNK = 1 << 16


class UploadError(Exception):
    """An upload was refused: ``status`` is the HTTP status, ``detail`` says why."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class IngestLimits:
    max_members: int
    max_uncompressed_bytes: int
    max_ratio: float
    ratio_min_bytes: int
    image_max_pixels: int
    dataset_max_pixels: int
    formats: tuple[str, ...]


@dataclass
class ParsedDataset:
    """A validated dataset: per split, uint8 images (N, H, W, C) and int64 labels (N,)."""

    format: str
    class_names: list[str]
    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    carved: list[str] = field(default_factory=list)
    """Splits this module created from ``train`` because the upload had none."""

    @property
    def channels(self) -> int:
        return int(self.splits["train"][0].shape[-1])

    @property
    def height(self) -> int:
        return int(self.splits["train"][0].shape[1])

    @property
    def width(self) -> int:
        return int(self.splits["train"][0].shape[2])

    @property
    def num_images(self) -> int:
        return sum(len(labels) for _, labels in self.splits.values())

    def counts(self) -> dict[str, list[int]]:
        k = len(self.class_names)
        return {
            name: np.bincount(labels, minlength=k).astype(int).tolist() for name, (_, labels) in self.splits.items()
        }


def parse_upload(
    path: Path,
    limits: IngestLimits,
    *,
    filename: str | None = None,
    class_names: list[str] | None = None,
    image_size: int | None = None,
) -> ParsedDataset:
    """Validate the uploaded file at ``path`` and return its images; raises :class:`UploadError`."""
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise UploadError(415, "the file is neither a .zip (ImageFolder layout) nor a MedMNIST .npz")
    try:
        with zipfile.ZipFile(path) as archive:
            members = check_members(archive, limits)
            is_npz = bool(members) and all(m.filename.endswith(".npy") for m in members if not m.is_dir())
            if (filename or "").lower().endswith(".npz") and not is_npz:
                raise UploadError(422, "wrong layout: a .npz must contain only .npy arrays")
            if is_npz:
                parsed = _parse_npz(archive, members, limits, class_names)
            else:
                parsed = _parse_imagefolder(archive, members, limits, class_names, image_size)
    except zipfile.BadZipFile as exc:
        raise UploadError(422, f"the archive is corrupt: {exc}") from None
    _check_classes(parsed)
    _carve_missing_splits(parsed)
    return parsed


def check_members(archive: zipfile.ZipFile, limits: IngestLimits) -> list[zipfile.ZipInfo]:
    """Refuse unsafe or oversized archives before anything is extracted; returns the members."""
    members = archive.infolist()
    if len(members) > limits.max_members:
        raise UploadError(422, f"the archive has {len(members)} members; at most {limits.max_members} are allowed")
    total = 0
    for info in members:
        name = info.filename
        if "\x00" in name or "\\" in name:
            raise UploadError(422, f"unsafe member name {name!r}: NUL bytes and backslashes are not allowed")
        if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
            raise UploadError(422, f"unsafe member {name!r}: absolute paths are not allowed")
        if ".." in PurePosixPath(name).parts:
            raise UploadError(422, f"unsafe member {name!r}: path traversal ('..') is not allowed")
        file_type = (info.external_attr >> 16) & 0o170000
        if file_type == 0o120000:
            raise UploadError(422, f"unsafe member {name!r}: symbolic links are not allowed")
        if file_type not in (0, 0o100000, 0o040000):
            raise UploadError(422, f"unsafe member {name!r}: only regular files and folders are allowed")
        if info.flag_bits & 0x1:
            raise UploadError(422, f"member {name!r} is encrypted; encrypted archives are not supported")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise UploadError(422, f"member {name!r} uses an unsupported compression method")
        total += info.file_size
        if total > limits.max_uncompressed_bytes:
            raise UploadError(
                413, f"the archive expands to more than {limits.max_uncompressed_bytes} bytes (a zip bomb?)"
            )
        if info.file_size > limits.ratio_min_bytes:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > limits.max_ratio:
                raise UploadError(
                    422,
                    f"member {name!r} expands {ratio:.0f}:1 (limit {limits.max_ratio:.0f}:1): a zip bomb?",
                )
    return members


class _Budget:
    """Bytes still allowed to be read out of the archive, whatever its headers claim."""

    def __init__(self, limit: int) -> None:
        self.left = limit

    def read(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
        chunks: list[bytes] = []
        size = 0
        with archive.open(info) as fh:
            while chunk := fh.read(_READ_CHUNK):
                size += len(chunk)
                self.left -= len(chunk)
                if size > info.file_size:
                    raise UploadError(422, f"member {info.filename!r} is larger than its header says")
                if self.left < 0:
                    raise UploadError(413, "the archive expands to more bytes than allowed (a zip bomb?)")
                chunks.append(chunk)
        return b"".join(chunks)


# --- MedMNIST npz -------------------------------------------------------------------------------------------


def _parse_npz(
    archive: zipfile.ZipFile,
    members: list[zipfile.ZipInfo],
    limits: IngestLimits,
    class_names: list[str] | None,
) -> ParsedDataset:
    budget = _Budget(limits.max_uncompressed_bytes)
    arrays: dict[str, np.ndarray] = {}
    for info in members:
        if info.is_dir():
            continue
        key = info.filename[: -len(".npy")]
        try:
            arrays[key] = np.lib.format.read_array(io.BytesIO(budget.read(archive, info)), allow_pickle=False)
        except ValueError as exc:
            raise UploadError(422, f"array {key!r} cannot be read safely: {exc}") from None
    if "train_images" not in arrays or "train_labels" not in arrays:
        raise UploadError(
            422,
            "wrong layout: a MedMNIST .npz needs train_images and train_labels "
            f"(and optionally val_* / test_*); found {sorted(arrays) or 'nothing'}",
        )
    splits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    shape: tuple[int, ...] | None = None
    pixels = 0
    for split in SPLITS:
        have = [f"{split}_images" in arrays, f"{split}_labels" in arrays]
        if not any(have):
            continue
        if not all(have):
            raise UploadError(422, f"wrong layout: {split}_images and {split}_labels must come together")
        images = _npz_images(arrays[f"{split}_images"], split, limits)
        labels = _npz_labels(arrays[f"{split}_labels"], split, len(images))
        if shape is None:
            shape = images.shape[1:]
        elif images.shape[1:] != shape:
            raise UploadError(422, f"wrong layout: {split}_images are {images.shape[1:]}, train_images are {shape}")
        pixels += images.size
        if pixels > limits.dataset_max_pixels:
            raise UploadError(413, f"the dataset has more than {limits.dataset_max_pixels} pixel values")
        splits[split] = (images, labels)
    if "class_names" in arrays:
        names = arrays["class_names"]
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise UploadError(422, "class_names must be a 1-d array of strings")
        class_names = class_names or [str(n) for n in names.tolist()]
    num_classes = int(max(labels.max(initial=-1) for _, labels in splits.values())) + 1
    names = class_names or [str(k) for k in range(num_classes)]
    if num_classes > len(names):
        raise UploadError(422, f"labels go up to {num_classes - 1} but only {len(names)} class names were given")
    return ParsedDataset(format="npz", class_names=names, splits=splits)


def _npz_images(images: np.ndarray, split: str, limits: IngestLimits) -> np.ndarray:
    if images.dtype != np.uint8:
        raise UploadError(422, f"wrong layout: {split}_images must be uint8, got {images.dtype}")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise UploadError(
            422, f"wrong layout: {split}_images must be (N, H, W) or (N, H, W, 3), got {tuple(images.shape)}"
        )
    if len(images) == 0:
        raise UploadError(422, f"{split}_images is empty")
    if images.shape[1] * images.shape[2] > limits.image_max_pixels:
        raise UploadError(422, f"images of {images.shape[2]}x{images.shape[1]} exceed the pixel limit")
    return np.ascontiguousarray(images)


def _npz_labels(labels: np.ndarray, split: str, count: int) -> np.ndarray:
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise UploadError(422, f"wrong layout: {split}_labels must be (N,) or (N, 1); multi-label is not supported")
    if labels.dtype.kind not in "iu":
        raise UploadError(422, f"wrong layout: {split}_labels must be integers, got {labels.dtype}")
    if len(labels) != count:
        raise UploadError(422, f"wrong layout: {split} has {count} images but {len(labels)} labels")
    if len(labels) and labels.min() < 0:
        raise UploadError(422, f"{split}_labels contains negative labels")
    return labels.astype(np.int64)


# --- ImageFolder zip ----------------------------------------------------------------------------------------


def _ignored(parts: tuple[str, ...]) -> bool:
    return parts[0] == "__MACOSX" or parts[-1] in IGNORED_NAMES or parts[-1].startswith("._")


def _layout(
    members: list[zipfile.ZipInfo],
) -> tuple[dict[tuple[str, str], list[zipfile.ZipInfo]], set[tuple[str, str]]]:
    """Map members to ``(split, class)``: files per (split, class), and every (split, class) folder seen."""
    files = [(PurePosixPath(m.filename).parts, m) for m in members if not m.is_dir()]
    dirs = [PurePosixPath(m.filename).parts for m in members if m.is_dir()]
    files = [(p, m) for p, m in files if not _ignored(p)]
    dirs = [p for p in dirs if p[0] != "__MACOSX"]
    if not files:
        raise UploadError(422, "wrong layout: the archive holds no images")
    roots = {p[0] for p, _ in files}
    depths = {len(p) for p, _ in files}
    strip = 0
    if len(roots) == 1 and min(depths) >= 3 and not (depths == {3} and next(iter(roots)).lower() in SPLIT_ALIASES):
        strip = 1  # a single wrapper folder, e.g. ``mydata/train/a/1.png``
    files = [(p[strip:], m) for p, m in files]
    dirs = [p[strip:] for p in dirs if len(p) > strip]
    depths = {len(p) for p, _ in files}
    if depths == {2}:
        split_of = None
    elif depths == {3}:
        split_of = SPLIT_ALIASES
    else:
        shallow = min(files, key=lambda pm: len(pm[0]))[1].filename
        deep = max(files, key=lambda pm: len(pm[0]))[1].filename
        raise UploadError(
            422,
            "wrong layout: expected <class>/<image> or <split>/<class>/<image> throughout, "
            f"found {shallow!r} and {deep!r}",
        )
    grouped: dict[tuple[str, str], list[zipfile.ZipInfo]] = {}
    folders: set[tuple[str, str]] = set()

    def key_of(parts: tuple[str, ...], what: str) -> tuple[str, str]:
        if split_of is None:
            return "train", parts[0]
        split = split_of.get(parts[0].lower())
        if split is None:
            raise UploadError(
                422, f"wrong layout: {what} is under {parts[0]!r}; split folders must be train, val or test"
            )
        return split, parts[1]

    for parts, info in files:
        key = key_of(parts, repr(info.filename))
        grouped.setdefault(key, []).append(info)
        folders.add(key)
    for parts in dirs:
        if split_of is None and len(parts) == 1:
            folders.add(("train", parts[0]))
        elif split_of is not None and len(parts) == 2:
            folders.add(key_of(parts, f"folder {'/'.join(parts)!r}"))
    return grouped, folders


def _parse_imagefolder(
    archive: zipfile.ZipFile,
    members: list[zipfile.ZipInfo],
    limits: IngestLimits,
    class_names: list[str] | None,
    image_size: int | None,
) -> ParsedDataset:
    grouped, folders = _layout(members)
    names = sorted({cls for _, cls in folders})
    for split, cls in sorted(folders):
        if not grouped.get((split, cls)):
            raise UploadError(422, f"empty class: folder {split}/{cls} has no images")
    if class_names is not None and sorted(class_names) != names:
        raise UploadError(422, f"class_names {class_names} do not match the class folders {names}")
    names = class_names or names
    index = {name: k for k, name in enumerate(names)}
    budget = _Budget(limits.max_uncompressed_bytes)
    decoded: dict[str, list[tuple[np.ndarray, int]]] = {}
    first_size: tuple[tuple[int, int], str] | None = None
    pixels = 0
    for (split, cls), infos in sorted(grouped.items()):
        for info in sorted(infos, key=lambda i: i.filename):
            array = decode_image(budget.read(archive, info), info.filename, limits, image_size)
            size = (array.shape[1], array.shape[0])
            if first_size is None:
                first_size = (size, info.filename)
            elif size != first_size[0]:
                raise UploadError(
                    422,
                    f"images differ in size: {first_size[0][0]}x{first_size[0][1]} ({first_size[1]!r}) and "
                    f"{size[0]}x{size[1]} ({info.filename!r}); pass image_size to resize them",
                )
            pixels += array.size
            if pixels > limits.dataset_max_pixels:
                raise UploadError(413, f"the dataset has more than {limits.dataset_max_pixels} pixel values")
            decoded.setdefault(split, []).append((array, index[cls]))
    color = any(array.shape[-1] == 3 for items in decoded.values() for array, _ in items)
    splits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split in SPLITS:
        items = decoded.get(split)
        if not items:
            continue
        images = np.stack([np.repeat(a, 3, axis=-1) if color and a.shape[-1] == 1 else a for a, _ in items])
        splits[split] = (images, np.array([label for _, label in items], dtype=np.int64))
    if "train" not in splits:
        raise UploadError(422, "wrong layout: there is no train split")
    return ParsedDataset(format="imagefolder", class_names=names, splits=splits)


def decode_image(data: bytes, name: str, limits: IngestLimits, image_size: int | None = None) -> np.ndarray:
    """Fully decode one image into uint8 (H, W, 1|3); refuse formats off the allow-list, oversized images."""
    try:
        with Image.open(io.BytesIO(data), formats=list(limits.formats)) as image:
            width, height = image.size
            if width * height > limits.image_max_pixels:
                raise UploadError(422, f"{name!r} is {width}x{height}, over the {limits.image_max_pixels} pixel limit")
            image.load()
            array = _to_array(image, name)
    except UnidentifiedImageError:
        allowed = ", ".join(limits.formats)
        raise UploadError(422, f"{name!r} is not an image in an accepted format ({allowed})") from None
    except Image.DecompressionBombError:
        raise UploadError(422, f"{name!r} is over the pixel limit (decompression bomb)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UploadError(422, f"{name!r} could not be decoded (truncated or corrupt image: {exc})") from None
    if image_size is not None and array.shape[:2] != (image_size, image_size):
        mode = "L" if array.shape[-1] == 1 else "RGB"
        resized = Image.fromarray(array[..., 0] if mode == "L" else array, mode=mode).resize(
            (image_size, image_size), Image.Resampling.LANCZOS
        )
        array = np.asarray(resized, dtype=np.uint8).reshape(image_size, image_size, -1)
    return array


def _to_array(image: Image.Image, name: str) -> np.ndarray:
    mode = image.mode
    if mode in ("1", "L", "LA", "P") and not (mode == "P" and _palette_has_color(image)):
        array = np.asarray(image.convert("L"), dtype=np.uint8)
        return array[..., None]
    if mode.startswith("I"):  # 16/32-bit gray, as models.data reads it: 0..65535 -> 0..255
        wide = np.asarray(image, dtype=np.int64).clip(0, 65535)
        return ((wide * 255 + 32767) // 65535).astype(np.uint8)[..., None]
    if mode == "F":
        raise UploadError(422, f"{name!r} is a floating-point image; convert it to 8 or 16 bit")
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _palette_has_color(image: Image.Image) -> bool:
    rgb = np.asarray(image.convert("RGB"))
    return bool((rgb[..., 0] != rgb[..., 1]).any() or (rgb[..., 1] != rgb[..., 2]).any())


# --- checks shared by both formats --------------------------------------------------------------------------


def _check_classes(parsed: ParsedDataset) -> None:
    k = len(parsed.class_names)
    if k < 2:
        raise UploadError(422, f"a classification dataset needs at least 2 classes, found {k}")
    if len(set(parsed.class_names)) != k:
        raise UploadError(422, "class names must be unique")
    for split, (_, labels) in parsed.splits.items():
        if len(labels) and labels.max() >= k:
            raise UploadError(422, f"{split} has label {int(labels.max())} but there are only {k} classes")
    train_counts = np.bincount(parsed.splits["train"][1], minlength=k)
    empty = [parsed.class_names[c] for c in np.flatnonzero(train_counts == 0)]
    if empty:
        raise UploadError(422, f"empty class: {', '.join(map(repr, empty))} has no training images")


def _carve_missing_splits(parsed: ParsedDataset) -> None:
    """Create ``val`` / ``test`` from ``train`` (stratified, fixed seed) when the upload has none."""
    missing = [s for s in ("val", "test") if s not in parsed.splits]
    if not missing:
        return
    images, labels = parsed.splits["train"]
    rng = np.random.default_rng(0)
    keep: list[np.ndarray] = []
    taken: dict[str, list[np.ndarray]] = {s: [] for s in missing}
    for cls in range(len(parsed.class_names)):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        start = 0
        for split in missing:
            n = int(round(CARVE_FRACTIONS[split] * len(idx)))
            n = min(n, max(len(idx) - start - 1, 0))
            taken[split].append(idx[start : start + n])
            start += n
        keep.append(idx[start:])
    for split in missing:
        chosen = np.sort(np.concatenate(taken[split]))
        parsed.splits[split] = (images[chosen], labels[chosen])
    kept = np.sort(np.concatenate(keep))
    parsed.splits["train"] = (images[kept], labels[kept])
    parsed.carved = missing


def write_normalized(parsed: ParsedDataset, target: Path) -> None:
    """Write the MedMNIST layout (gray images as (N, H, W), labels as (N, 1)) plus ``class_names``."""
    arrays: dict[str, np.ndarray] = {"class_names": np.array(parsed.class_names, dtype=str)}
    for split, (images, labels) in parsed.splits.items():
        arrays[f"{split}_images"] = images[..., 0] if images.shape[-1] == 1 else images
        arrays[f"{split}_labels"] = labels.reshape(-1, 1)
    with target.open("wb") as fh:
        np.savez_compressed(fh, **arrays)
