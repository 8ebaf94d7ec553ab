"""The labels.csv layout: image files (DICOM, PNG, JPEG...) in any folders, and a ``labels.csv`` that says what
each one is. The way hospitals hold data: a folder of scans and a spreadsheet of labels.

``labels.csv`` lies at the root of the tree (or of its one wrapping folder); paths in it are relative to the
CSV's folder (or, failing that, to the archive's root). One row is one image (a file may have several rows,
e.g. one per lesion). Columns (header names are case-insensitive; other columns are refused, so a misspelt one
is not silently ignored):

- ``file`` (path inside the archive) or ``sop_instance_uid`` (a DICOM file found by its SOPInstanceUID; every
  file is opened to learn it, and the UID is only ever looked up, never used as a path);
- ``label`` (class name; with an upload's ``class_names``, every label must be one of them);
- ``split`` (train / val / test; empty: train; missing splits are carved by the one rule, by patient);
- ``patient_id`` (else the DICOM PatientID): when every image has one, carving keeps each patient's images
  in one split, and a patient in two given splits is refused;
- a region of interest: ``x0,y0,x1,y1`` (pixels of the image, ``x1``/``y1`` exclusive) or ``mask`` (a mask
  image in the archive, the same size as the image; its non-zero pixels are the ROI). With ``roi=crop`` the
  image becomes a square around the ROI's bounding box (side: the longer box side x ``1 + 2 * roi_margin``,
  centred, moved inside the image, at most the image's shorter side), resized to ``image_size`` (default
  :data:`~models.datasets.options.ROI_IMAGE_SIZE`).

Messages name the CSV line and files, never a patient id or UID.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from models.datasets.checks import SizeGuard, check_class_names
from models.datasets.decode import Decoded, DecodeLog, decode_file, resize
from models.datasets.dicom import instance_uid, is_dicom
from models.datasets.filetree import FileTree, is_junk
from models.datasets.folder import SPLIT_ALIASES
from models.datasets.imageset import Split
from models.datasets.options import ROI_IMAGE_SIZE, ReadOptions
from models.errors import DatasetError, DatasetTooLargeError, clip
from models.names import SPLITS

LABELS_CSV = "labels.csv"
COLUMNS = ("file", "sop_instance_uid", "label", "split", "patient_id", "x0", "y0", "x1", "y1", "mask")
BOX = ("x0", "y0", "x1", "y1")
MAX_ROWS = 1_000_000


def find_labels(tree: FileTree) -> PurePosixPath | None:
    """``labels.csv`` at the tree's root or at the root of its one wrapping folder, else ``None``."""
    files = [p for p in tree.files() if not is_junk(p)]
    names = set(files)
    if PurePosixPath(LABELS_CSV) in names:
        return PurePosixPath(LABELS_CSV)
    roots = {p.parts[0] for p in files if len(p.parts) > 1}
    if len(roots) == 1 and all(len(p.parts) > 1 for p in files):
        candidate = PurePosixPath(next(iter(roots))) / LABELS_CSV
        if candidate in names:
            return candidate
    return None


@dataclass
class Row:
    line: int
    label: str
    split: str
    file: PurePosixPath | None
    uid: str | None
    patient: str | None
    box: tuple[int, int, int, int] | None
    mask: PurePosixPath | None
    decoded: Decoded | None = None
    where: str = ""


def _read_csv(tree: FileTree, path: PurePosixPath) -> tuple[str, list[dict[str, str]], list[int]]:
    where = tree.where(path)
    try:
        text = tree.read(path).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetError(f"{where}: not UTF-8 text (save the spreadsheet as CSV UTF-8)") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = [(name or "").strip().lower() for name in (reader.fieldnames or [])]
        unknown = [name for name in header if name not in COLUMNS]
        if unknown:
            raise DatasetError(f"{where}: unknown column(s) {clip(unknown)}; the columns are {', '.join(COLUMNS)}")
        if len(set(header)) != len(header):
            raise DatasetError(f"{where}: a column appears twice in the header")
        if "label" not in header or not ({"file", "sop_instance_uid"} & set(header)):
            raise DatasetError(f"{where}: the header needs a label column and a file or sop_instance_uid column")
        reader.fieldnames = header
        rows, lines = [], []
        for record in reader:
            if None in record:
                raise DatasetError(f"{where} line {reader.line_num}: more values than columns")
            values = {key: (value or "").strip() for key, value in record.items()}
            if any(values.values()):
                rows.append(values)
                lines.append(reader.line_num)
            if len(rows) > MAX_ROWS:
                raise DatasetTooLargeError(f"{where}: more than {MAX_ROWS} rows")
    except csv.Error as exc:
        raise DatasetError(f"{where} line {reader.line_num}: not valid CSV ({clip(exc)})") from None
    if not rows:
        raise DatasetError(f"{where}: no rows; give one row per image")
    return where, rows, lines


def _path(base: PurePosixPath, value: str) -> PurePosixPath:
    """A CSV path (``/`` or ``\\`` separated, relative to the CSV's folder) as a tree path; looked up, never opened."""
    parts = [part for part in value.replace("\\", "/").split("/") if part not in ("", ".")]
    return base.joinpath(*parts) if parts else base


def _box(values: dict[str, str], where: str) -> tuple[int, int, int, int] | None:
    given = [values.get(key, "") for key in BOX]
    if not any(given):
        return None
    if not all(given):
        raise DatasetError(f"{where}: an ROI box needs all of x0, y0, x1, y1")
    try:
        numbers = [float(value) for value in given]
    except ValueError:
        numbers = []
    if len(numbers) != 4 or not all(number.is_integer() for number in numbers):
        raise DatasetError(f"{where}: x0, y0, x1, y1 must be whole numbers of pixels, got {clip(given, 80)}")
    x0, y0, x1, y1 = (int(number) for number in numbers)
    if min(x0, y0) < 0 or x1 <= x0 or y1 <= y0:
        raise DatasetError(
            f"{where}: the ROI box {x0},{y0},{x1},{y1} is empty or negative (x1 > x0 >= 0, y1 > y0 >= 0)"
        )
    return x0, y0, x1, y1


def _rows(tree: FileTree, csv_path: PurePosixPath) -> tuple[str, list[Row]]:
    where, records, lines = _read_csv(tree, csv_path)
    base = csv_path.parent
    files = set(tree.files())
    rows = []
    for values, line in zip(records, lines, strict=True):
        at = f"{where} line {line}"
        label = values.get("label", "")
        if not label:
            raise DatasetError(f"{at}: no label")
        split_text = values.get("split", "")
        split = SPLIT_ALIASES.get(split_text.lower()) if split_text else "train"
        if split is None:
            raise DatasetError(f"{at}: split {clip(split_text, 40)!r} is not train, val or test")
        name, uid = values.get("file", ""), values.get("sop_instance_uid", "") or None
        if not name and not uid:
            raise DatasetError(f"{at}: neither file nor sop_instance_uid is given")
        path = _path(base, name) if name else None
        if path is not None and path not in files and _path(PurePosixPath(), name) in files:
            path = _path(PurePosixPath(), name)  # a path from the archive's root
        if path is not None and path not in files:
            raise DatasetError(f"{at}: file {clip(name)!r} is not in {tree.label}")
        if path is not None and uid:
            raise DatasetError(f"{at}: give file or sop_instance_uid, not both")
        box = _box(values, at)
        mask_name = values.get("mask", "")
        mask = _path(base, mask_name) if mask_name else None
        if mask is not None and mask not in files and _path(PurePosixPath(), mask_name) in files:
            mask = _path(PurePosixPath(), mask_name)
        if mask is not None and mask not in files:
            raise DatasetError(f"{at}: mask {clip(mask_name)!r} is not in {tree.label}")
        if mask is not None and box is not None:
            raise DatasetError(f"{at}: give an ROI box (x0,y0,x1,y1) or a mask, not both")
        rows.append(Row(line, label, split, path, uid, values.get("patient_id") or None, box, mask, where=at))
    return where, rows


def _mask_box(
    tree: FileTree, path: PurePosixPath, options: ReadOptions
) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
    """A mask's bounding box of non-zero pixels and its (height, width)."""
    where = tree.where(path)
    pixels = decode_file(tree.read(path), where, options, suffix=path.suffix).pixels
    ys, xs = np.nonzero(pixels.max(axis=-1))
    if not len(ys):
        raise DatasetError(f"{where}: the mask has no non-zero pixel, so no region of interest")
    return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1), pixels.shape[:2]


def roi_square(box: tuple[int, int, int, int], shape: tuple[int, int], margin: float) -> tuple[int, int, int, int]:
    """The crop around ``box`` (x0, y0, x1, y1) in an image of ``shape`` (h, w): a square of side
    ``max(box w, box h) * (1 + 2 * margin)`` (at least 1, at most the shorter image side), centred on the box,
    moved inside the image."""
    x0, y0, x1, y1 = box
    height, width = shape
    side = min(max(1, round(max(x1 - x0, y1 - y0) * (1 + 2 * margin))), height, width)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = min(max(0, round(cx - side / 2)), width - side)
    top = min(max(0, round(cy - side / 2)), height - side)
    return left, top, left + side, top + side


def _decode_rows(tree: FileTree, rows: list[Row], options: ReadOptions) -> None:
    """Read every file the rows need exactly once (all files when a row names a SOPInstanceUID)."""
    by_path: dict[PurePosixPath, list[Row]] = {}
    by_uid: dict[str, list[Row]] = {}
    for row in rows:
        if row.file is not None:
            by_path.setdefault(row.file, []).append(row)
        else:
            by_uid.setdefault(row.uid, []).append(row)  # type: ignore[arg-type]
    masks = {row.mask for row in rows if row.mask is not None}
    candidates = [p for p in tree.files() if not is_junk(p) and p.name != LABELS_CSV] if by_uid else sorted(by_path)
    seen_uid: dict[str, PurePosixPath] = {}
    for path in candidates:
        wanted = list(by_path.get(path, []))
        if by_uid and path not in masks:
            data = tree.read(path)
            uid = instance_uid(data, tree.where(path)) if is_dicom(data) else None
            if uid is not None and uid in by_uid:
                if uid in seen_uid:
                    raise DatasetError(
                        f"{tree.where(path)}: has the same SOPInstanceUID as {tree.where(seen_uid[uid])}, which "
                        "labels.csv looks up; each sop_instance_uid must name one file"
                    )
                seen_uid[uid] = path
                wanted += by_uid[uid]
            if not wanted:
                continue
        elif not wanted:
            continue
        else:
            data = tree.read(path)
        decoded = decode_file(data, tree.where(path), options, suffix=path.suffix)
        for row in wanted:
            row.decoded, row.where = decoded, f"{row.where} ({tree.where(path)})"
    for uid, waiting in by_uid.items():
        if uid not in seen_uid:
            raise DatasetError(f"{waiting[0].where}: no DICOM file in {tree.label} has this sop_instance_uid")


def table_parts(
    tree: FileTree, options: ReadOptions, class_names: list[str] | None = None
) -> tuple[list[str], dict[str, Split], dict[str, Any] | None]:
    """Class names, the splits (with patient ids when every image has one) and the decode record."""
    csv_path = find_labels(tree)
    if csv_path is None:
        raise DatasetError(f"{tree.label}: no {LABELS_CSV} at the root")
    where, rows = _rows(tree, csv_path)
    labels = sorted({row.label for row in rows})
    if class_names is not None:
        unknown = next((row for row in rows if row.label not in class_names), None)
        if unknown is not None:
            raise DatasetError(
                f"{unknown.where}: unknown label {clip(unknown.label, 80)!r}; the classes are {clip(class_names)}"
            )
    names = list(class_names) if class_names is not None else labels
    if len(names) > options.max_classes:
        raise DatasetError(f"{where}: {len(names)} classes; at most {options.max_classes} are allowed")
    check_class_names(where, names)
    label_of = {name: k for k, name in enumerate(names)}
    boxes = {mask: _mask_box(tree, mask, options) for mask in sorted({r.mask for r in rows if r.mask is not None})}
    _decode_rows(tree, rows, options)
    crop = options.pixels.roi == "crop" and any(row.box is not None or row.mask is not None for row in rows)
    size = options.image_size if options.image_size is not None else (ROI_IMAGE_SIZE if crop else None)
    log = DecodeLog()
    images: list[np.ndarray] = []
    guard = SizeGuard(tree.label, options.dataset_max_pixels)
    for row in rows:
        assert row.decoded is not None
        image = row.decoded.pixels
        height, width = image.shape[:2]
        box = row.box
        if row.mask is not None:
            box, mask_shape = boxes[row.mask]
            if mask_shape != (height, width):
                raise DatasetError(
                    f"{row.where}: the mask is {mask_shape[1]}x{mask_shape[0]} but the image is {width}x{height}"
                )
        if box is not None and (box[2] > width or box[3] > height):
            raise DatasetError(
                f"{row.where}: the ROI {box[0]},{box[1]},{box[2]},{box[3]} is outside the {width}x{height} image"
            )
        if crop and box is not None:
            left, top, right, bottom = roi_square(box, (height, width), options.pixels.roi_margin)
            image = image[top:bottom, left:right]
        image = resize(image, size)
        guard.add(image, row.where)
        log.add(row.decoded, cropped=crop and box is not None)
        images.append(image)
    patients = _patients(rows)
    color = any(image.shape[-1] == 3 for image in images)
    parts: dict[str, Split] = {}
    for split in SPLITS:
        index = [i for i, row in enumerate(rows) if row.split == split]
        if not index:
            continue
        stack = np.stack([np.repeat(images[i], 3, axis=-1) if color and images[i].shape[-1] == 1 else images[i]
                          for i in index])  # fmt: skip
        split_labels = np.array([label_of[rows[i].label] for i in index], dtype=np.int64)
        split_patients = None if patients is None else np.array([patients[i] for i in index], dtype=object)
        parts[split] = Split(stack, split_labels, split_patients)
    return names, parts, log.record(options, size)


def _patients(rows: list[Row]) -> list[str] | None:
    """Every row's patient (the CSV's, else the DICOM PatientID); ``None`` when no row has one."""
    found = [row.patient or (row.decoded.patient_id if row.decoded else None) for row in rows]
    if not any(found):
        return None
    missing = next(row for row, patient in zip(rows, found, strict=True) if not patient) if not all(found) else None
    if missing is not None:
        raise DatasetError(
            f"{missing.where}: no patient id (no patient_id value and no DICOM PatientID) while other images have "
            "one; give every image its patient, or none (splits are carved by patient only when all are known)"
        )
    home: dict[str, Row] = {}
    for row, patient in zip(rows, found, strict=True):
        other = home.setdefault(patient, row)  # type: ignore[arg-type]
        if other.split != row.split:
            raise DatasetError(
                f"{row.where}: this image's patient also has images in the {other.split} split ({other.where}), "
                f"but this one is in {row.split}; a patient's images must all be in one split (leave split empty "
                "to have val and test carved by patient)"
            )
    return found  # type: ignore[return-value]
