"""Turn a MedMNIST-layout npz into lab-style DICOM data: one DICOM file per image in hospital-style folders, a
labels.csv (``file``, ``label``, ``split``) at the root, and optionally the same as a zip to upload.

    python scripts/npz_to_dicom.py ../shared/datasets/breastmnist.npz /tmp/breast-dicom --zip /tmp/breast-dicom.zip
    genmix run --dataset /tmp/breast-dicom --generator dcgan --profile quick --seeds 0

``--modality CT`` (default) stores each 8-bit gray value as Hounsfield units inside the abdomen window
(HU = round(399 g / 255 - 160); slope 1, intercept -1024, 16-bit), so GenMix's default window (abdomen,
W 400 / L 40) gives back exactly the npz's pixels and a job on the DICOM upload sees the same images as one on
the npz. ``--modality US`` writes the 8-bit values as ultrasound (normalised by percentiles when read).
MedMNIST has no patient information: every image gets its own synthetic PatientID (``MNIST00042``), and the
npz's own splits go into the ``split`` column, so nothing is carved. Files are written with pydicom
(``tests/support/dicom.py``); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from models.medmnist import MEDMNIST_CLASS_NAMES  # noqa: E402
from tests.support.dicom import dicom_bytes, hu_from_gray, labels_csv  # noqa: E402

SPLITS = ("train", "val", "test")


def class_names(path: Path, arrays: dict[str, np.ndarray], count: int) -> list[str]:
    if "class_names" in arrays:
        return [str(name) for name in arrays["class_names"]]
    known = MEDMNIST_CLASS_NAMES.get(path.stem.split("_")[0].lower())
    if known is not None and len(known) == count:
        return [name.replace("/", "_or_").replace(" ", "_") for name in known]
    return [str(k) for k in range(count)]


def convert(npz: Path, out: Path, modality: str, limit: int | None) -> int:
    with np.load(npz, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    count = int(max(arrays[f"{s}_labels"].max() for s in SPLITS if f"{s}_labels" in arrays)) + 1
    names = class_names(npz, arrays, count)
    rows = []
    number = 0
    for split in SPLITS:
        if f"{split}_images" not in arrays:
            continue
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"].reshape(-1)
        for image, label in list(zip(images, labels, strict=True))[:limit]:
            if image.ndim == 3:
                raise SystemExit(f"{npz}: colour images are not converted (gray only)")
            number += 1
            patient = f"MNIST{number:05d}"
            pixels = hu_from_gray(image) if modality == "CT" else image
            name = f"patients/{patient}/series1/IM{number:05d}"
            target = out / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(dicom_bytes(pixels, modality=modality, identity={"PatientID": patient}))
            rows.append({"file": name, "label": names[int(label)], "split": split})
    (out / "labels.csv").write_bytes(labels_csv(rows))
    return number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("npz", type=Path, help="MedMNIST-layout .npz (gray images)")
    parser.add_argument("out", type=Path, help="folder to write (labels.csv at its root)")
    parser.add_argument("--zip", type=Path, default=None, help="also write the folder as this zip, for an upload")
    parser.add_argument("--modality", choices=("CT", "US"), default="CT")
    parser.add_argument("--limit", type=int, default=None, help="at most this many images per split")
    args = parser.parse_args()
    if args.out.exists() and any(args.out.iterdir()):
        raise SystemExit(f"{args.out} exists and is not empty")
    args.out.mkdir(parents=True, exist_ok=True)
    written = convert(args.npz, args.out, args.modality, args.limit)
    if args.zip is not None:
        with zipfile.ZipFile(args.zip, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(args.out.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(args.out).as_posix())
    print(f"{written} DICOM files and labels.csv in {args.out}" + (f"; zip: {args.zip}" if args.zip else ""))


if __name__ == "__main__":
    main()
