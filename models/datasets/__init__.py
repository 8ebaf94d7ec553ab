"""Reading datasets: one torch-free reader (numpy + Pillow) behind every entrance.

``genmix run --dataset``, the workers and ``POST /datasets`` all read through here, so the same images are
validated by the same checks and get the same carved val/test split however they arrive.

Modules, one job each: ``imageset`` (Split / ImageSet types), ``filetree`` (a directory or zip as one tree),
``decode`` (image bytes -> pixels; the plug-in point), ``dicom`` (the DICOM plug-in: pydicom, windows, frames),
``options`` (formats, size limits, pixel rules), ``folder``, ``table`` (labels.csv) and ``npz`` (the three
layouts), ``checks`` (structure, patients and the usability rule), ``carve`` (the one rule for missing splits,
by patient when known), ``read`` (the entrances). Torch conversions live in :mod:`models.tensors`.
"""

from models.datasets import dicom as dicom  # registers the DICOM decoder
from models.datasets.carve import CARVE_PERCENT, CARVE_SEED, carve_counts, carve_missing
from models.datasets.checks import check_structure, check_usable
from models.datasets.decode import Decoded, decode_file, decode_image, register_decoder
from models.datasets.filetree import DirTree, FileTree, ZipTree
from models.datasets.imageset import ImageSet, Split, slice_imageset
from models.datasets.npz import load_synthetic_npz, open_npz, save_npz, save_synthetic_npz
from models.datasets.options import (
    DEFAULT_FORMATS,
    FRAME_RULES,
    ROI_MODES,
    WINDOW_PRESETS,
    WINDOWS,
    PixelRules,
    ReadOptions,
)
from models.datasets.read import (
    assemble,
    load_dataset,
    load_image_folder,
    load_npz,
    read_folder_tree,
    read_image_tree,
    read_npz_tree,
    read_table_tree,
)
from models.datasets.table import LABELS_CSV
from models.errors import DatasetError, DatasetTooLargeError

__all__ = [
    "CARVE_PERCENT",
    "CARVE_SEED",
    "DEFAULT_FORMATS",
    "FRAME_RULES",
    "LABELS_CSV",
    "ROI_MODES",
    "WINDOWS",
    "WINDOW_PRESETS",
    "DatasetError",
    "DatasetTooLargeError",
    "Decoded",
    "DirTree",
    "FileTree",
    "ImageSet",
    "PixelRules",
    "ReadOptions",
    "Split",
    "ZipTree",
    "assemble",
    "carve_counts",
    "carve_missing",
    "check_structure",
    "check_usable",
    "decode_file",
    "decode_image",
    "load_dataset",
    "load_image_folder",
    "load_npz",
    "load_synthetic_npz",
    "open_npz",
    "read_folder_tree",
    "read_image_tree",
    "read_npz_tree",
    "read_table_tree",
    "register_decoder",
    "save_npz",
    "save_synthetic_npz",
    "slice_imageset",
]
