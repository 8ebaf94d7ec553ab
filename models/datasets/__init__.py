"""Reading datasets: one torch-free reader (numpy + Pillow) behind every entrance.

``genmix run --dataset``, the workers and ``POST /datasets`` all read through here, so the same images are
validated by the same checks and get the same carved val/test split however they arrive.

Modules, one job each: ``imageset`` (Split / ImageSet types), ``filetree`` (a directory or zip as one tree),
``decode`` (image bytes -> pixels; the plug-in point for DICOM), ``options`` (formats and size limits),
``folder`` and ``npz`` (the two layouts), ``checks`` (structure and the usability rule), ``carve`` (the one
rule for missing splits), ``read`` (the entrances). Torch conversions live in :mod:`models.tensors`.
"""

from models.datasets.carve import CARVE_PERCENT, CARVE_SEED, carve_counts, carve_missing
from models.datasets.checks import check_structure, check_usable
from models.datasets.decode import decode_image, register_decoder
from models.datasets.filetree import DirTree, FileTree, ZipTree
from models.datasets.imageset import ImageSet, Split, slice_imageset
from models.datasets.npz import load_synthetic_npz, open_npz, save_npz, save_synthetic_npz
from models.datasets.options import DEFAULT_FORMATS, ReadOptions
from models.datasets.read import (
    assemble,
    load_dataset,
    load_image_folder,
    load_npz,
    read_folder_tree,
    read_npz_tree,
)
from models.errors import DatasetError, DatasetTooLargeError

__all__ = [
    "CARVE_PERCENT",
    "CARVE_SEED",
    "DEFAULT_FORMATS",
    "DatasetError",
    "DatasetTooLargeError",
    "DirTree",
    "FileTree",
    "ImageSet",
    "ReadOptions",
    "Split",
    "ZipTree",
    "assemble",
    "carve_counts",
    "carve_missing",
    "check_structure",
    "check_usable",
    "decode_image",
    "load_dataset",
    "load_image_folder",
    "load_npz",
    "load_synthetic_npz",
    "open_npz",
    "read_folder_tree",
    "read_npz_tree",
    "register_decoder",
    "save_npz",
    "save_synthetic_npz",
    "slice_imageset",
]
