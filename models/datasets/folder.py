"""Image folders: ``<class>/<image>`` or ``<split>/<class>/<image>`` (optionally inside one wrapper folder).

The layout is read from a :class:`~models.datasets.filetree.FileTree`, so a folder on disk and a zip upload
are one code path: same split names, same junk files skipped, same order (class folder, then file name).
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import numpy as np

from models.datasets.checks import SizeGuard, check_class_names
from models.datasets.decode import DecodeLog, decode_file, resize
from models.datasets.filetree import FileTree, is_junk
from models.datasets.imageset import Split
from models.datasets.options import ReadOptions
from models.errors import DatasetError, clip
from models.names import SPLITS

SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                 "test": "test", "testing": "test"}  # fmt: skip
"""Split folder names accepted (case-insensitive) and the split each one is."""
_EXPECTED = "expected <class>/<image> or <split>/<class>/<image> throughout"

Layout = dict[tuple[str, str], list[PurePosixPath]]
"""(split, class folder) -> image files, in tree order."""


def folder_layout(tree: FileTree) -> Layout:
    """Group the tree's files by (split, class); refuse mixed depths, unknown split folders, empty classes."""
    files = [p for p in tree.files() if not is_junk(p)]
    if not files:
        raise DatasetError(f"{tree.label}: wrong layout: no images found; {_EXPECTED}")
    roots = {p.parts[0] for p in files}
    depths = {len(p.parts) for p in files}
    root = next(iter(roots))
    wrapped = len(roots) == 1 and min(depths) >= 3 and not (depths == {3} and root.lower() in SPLIT_ALIASES)
    strip = 1 if wrapped else 0  # a single wrapper folder, e.g. ``mydata/train/a/1.png``
    depths = {len(p.parts) - strip for p in files}
    if depths not in ({2}, {3}):
        shallow = min(files, key=lambda p: len(p.parts))
        deep = max(files, key=lambda p: len(p.parts))
        found = f"found {tree.where(shallow)} and {tree.where(deep)}"
        raise DatasetError(f"{tree.label}: wrong layout: {_EXPECTED}, {found}")
    split_layout = depths == {3}

    def key_of(parts: tuple[str, ...], where: str) -> tuple[str, str]:
        if not split_layout:
            return "train", parts[0]
        split = SPLIT_ALIASES.get(parts[0].lower())
        if split is None:
            raise DatasetError(
                f"{where}: wrong layout: it is under {clip(parts[0])!r}; split folders must be train, val or test"
            )
        return split, parts[1]

    layout: Layout = {}
    for path in files:
        layout.setdefault(key_of(path.parts[strip:], tree.where(path)), []).append(path)
    for folder in tree.dirs():
        parts = folder.parts[strip:]
        inside = not strip or folder.parts[0] == root
        if inside and not is_junk(folder) and len(parts) == (2 if split_layout else 1):
            if key_of(parts, tree.where(folder)) not in layout:
                raise DatasetError(f"{tree.where(folder)}: empty class: the folder has no images")
    return layout


def folder_parts(
    tree: FileTree, options: ReadOptions, class_names: list[str] | None = None
) -> tuple[list[str], dict[str, Split], dict[str, Any] | None]:
    """Class names (sorted folder names, or ``class_names`` in that order), the decoded splits (with patient
    ids when every image has one, e.g. DICOM files with a PatientID) and the decode record (DICOM only)."""
    layout = folder_layout(tree)
    folders = sorted({cls for _, cls in layout})
    if class_names is not None and sorted(class_names) != folders:
        raise DatasetError(
            f"{tree.label}: class_names {clip(class_names)} do not match the class folders {clip(folders)}"
        )
    names = list(class_names) if class_names is not None else folders
    check_class_names(tree.label, names)
    label_of = {name: k for k, name in enumerate(names)}
    decoded: dict[str, list[tuple[np.ndarray, int, str | None]]] = {}
    guard = SizeGuard(tree.label, options.dataset_max_pixels)
    without_patient: str | None = None
    log = DecodeLog()
    for split in SPLITS:
        for cls in folders:
            for path in layout.get((split, cls), []):
                where = tree.where(path)
                file = decode_file(tree.read(path), where, options, suffix=path.suffix)
                log.add(file)
                array = resize(file.pixels, options.image_size)
                guard.add(array, where)
                if file.patient_id is None and without_patient is None:
                    without_patient = where
                decoded.setdefault(split, []).append((array, label_of[cls], file.patient_id))
    known = any(patient is not None for items in decoded.values() for _, _, patient in items)
    if known and without_patient is not None:
        raise DatasetError(
            f"{without_patient}: no patient id (no DICOM PatientID) while other images have one; an image folder "
            "groups splits by patient only when every image has one (a labels.csv can give patient_id)"
        )
    color = any(array.shape[-1] == 3 for items in decoded.values() for array, _, _ in items)
    parts: dict[str, Split] = {}
    for split, items in decoded.items():
        images = np.stack([np.repeat(a, 3, axis=-1) if color and a.shape[-1] == 1 else a for a, _, _ in items])
        labels = np.array([label for _, label, _ in items], dtype=np.int64)
        patients = np.array([patient for _, _, patient in items], dtype=object) if known else None
        parts[split] = Split(images, labels, patients)
    return names, parts, log.record(options, options.image_size)
