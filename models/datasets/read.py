"""The entrances: read a tree (npz or image folder) into a checked ImageSet, and load one from a path.

Whatever the source, a read ends in :func:`assemble`: the structural checks, the one carving rule for
missing splits, and the usability check, in that order, so the same images give the same ImageSet (and
the same refusal) through an upload, ``genmix run --dataset`` and a worker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from models.datasets.carve import carve_missing
from models.datasets.checks import check_structure, check_usable
from models.datasets.filetree import MAX_DEPTH, TABLE_MAX_DEPTH, DirTree, FileTree
from models.datasets.folder import folder_parts
from models.datasets.imageset import ImageSet, Split
from models.datasets.npz import npz_arrays, npz_class_names, npz_parts, open_npz
from models.datasets.options import ReadOptions
from models.datasets.table import LABELS_CSV, find_labels, table_parts
from models.errors import DatasetError


def assemble(
    name: str, source: str, class_names: list[str], parts: dict[str, Split], decode: dict[str, Any] | None = None
) -> ImageSet:
    """Check, carve missing val/test (by patient when known), check usability: the last step of every read."""
    check_structure(source, class_names, parts)
    imageset = ImageSet(name, list(class_names), carve_missing(parts, class_names, source), decode)
    check_usable(source, imageset)
    return imageset


def _npz_imageset(
    name: str, source: str, arrays: dict[str, np.ndarray], options: ReadOptions, class_names: list[str] | None
) -> ImageSet:
    parts = npz_parts(source, arrays, options)
    names = list(class_names) if class_names is not None else npz_class_names(source, name, arrays, parts)
    return assemble(name, source, names, parts)


def read_npz_tree(
    tree: FileTree, *, name: str, options: ReadOptions | None = None, class_names: list[str] | None = None
) -> ImageSet:
    """An npz given as a tree of ``.npy`` members; ``class_names`` overrides the file's own."""
    return _npz_imageset(name, tree.label, npz_arrays(tree), options or ReadOptions(), class_names)


def read_folder_tree(
    tree: FileTree, *, name: str, options: ReadOptions | None = None, class_names: list[str] | None = None
) -> ImageSet:
    """An image folder given as a tree; ``class_names`` (the folder names, reordered) sets the label order."""
    names, parts, decode = folder_parts(tree, options or ReadOptions(), class_names)
    return assemble(name, tree.label, names, parts, decode)


def read_table_tree(
    tree: FileTree, *, name: str, options: ReadOptions | None = None, class_names: list[str] | None = None
) -> ImageSet:
    """Files in any folders plus ``labels.csv`` (see :mod:`models.datasets.table`); ``class_names`` sets the
    label order and which labels are known."""
    names, parts, decode = table_parts(tree, options or ReadOptions(), class_names)
    return assemble(name, tree.label, names, parts, decode)


def read_image_tree(
    tree: FileTree, *, name: str, options: ReadOptions | None = None, class_names: list[str] | None = None
) -> tuple[str, ImageSet]:
    """A tree of image files: the labels.csv layout when it has one, else ImageFolder; returns (layout, set)."""
    if find_labels(tree) is not None:
        return "csv", read_table_tree(tree, name=name, options=options, class_names=class_names)
    return "imagefolder", read_folder_tree(tree, name=name, options=options, class_names=class_names)


def load_npz(path: str | Path, options: ReadOptions | None = None) -> ImageSet:
    """A MedMNIST-layout npz on disk (``{train,val,test}_{images,labels}``, val/test optional, ``class_names``)."""
    path = Path(path)
    return _npz_imageset(path.stem, str(path), open_npz(path), options or ReadOptions(), None)


def load_image_folder(root: str | Path, options: ReadOptions | None = None) -> ImageSet:
    """An image folder on disk: files in any folders with ``labels.csv`` at the root, else ``<split>/<class>/*``
    or ``<class>/*`` (class names are the folder names)."""
    root = Path(root)
    depth = TABLE_MAX_DEPTH if any(root.glob(LABELS_CSV)) or any(root.glob(f"*/{LABELS_CSV}")) else MAX_DEPTH
    return read_image_tree(DirTree(root, depth), name=root.name, options=options)[1]


def load_dataset(path: str | Path, options: ReadOptions | None = None) -> ImageSet:
    """A data set from an ``.npz`` file or an image folder (ImageFolder or labels.csv layout): the reader of
    ``genmix run`` and the workers."""
    path = Path(path)
    if path.suffix.lower() == ".npz" and not path.is_dir():
        return load_npz(path, options)
    if path.is_dir():
        return load_image_folder(path, options)
    raise DatasetError(f"{path}: expected an .npz file or an image folder")
