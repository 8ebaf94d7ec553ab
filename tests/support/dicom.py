"""DICOM files for the tests and scripts, written with pydicom (never downloaded): CT-like Hounsfield units from
the shared datasets' real images, MONOCHROME1, multi-frame, compressed transfer syntaxes, missing tags, and the
labels.csv + zip layout a lab uploads.

``hu_from_gray`` maps 8-bit gray values into the abdomen window's range (W 400, L 40) so exactly that the
window gives the original gray values back: a test (or ``scripts/npz_to_dicom.py``) can check that an image
survives the DICOM round trip.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

CT_INTERCEPT = -1024.0
IDENTITY = {
    "PatientName": "Zyxwvut^Quintessa",
    "PatientID": "PID-93417-SECRET",
    "PatientBirthDate": "19230817",
    "InstitutionName": "St Secretia Hospital",
    "AccessionNumber": "ACC77120944",
    "ReferringPhysicianName": "Vorpalblade^Ottoline",
}
"""Identifying values a de-identification test looks for in every byte the service serves."""
UID_ROOT = "1.2.826.0.1.3680043.8.498."
"""pydicom's UID root; the tests' UIDs follow it."""


def hu_from_gray(gray: np.ndarray) -> np.ndarray:
    """uint8 gray -> int16 HU in the abdomen window (-160..239), which the LINEAR window W 400 / L 40 maps back."""
    return np.rint(399.0 * np.asarray(gray, dtype=np.float64) / 255.0 - 160.0).astype(np.int16)


def dicom_bytes(
    pixels: np.ndarray,
    *,
    modality: str = "CT",
    identity: Mapping[str, str] | None = None,
    sop_uid: str | None = None,
    photometric: str | None = None,
    transfer_syntax: str = "explicit",
    window: tuple[float, float] | None = None,
    omit: Iterable[str] = (),
    preamble: bool = True,
) -> bytes:
    """One DICOM Part 10 file.

    ``pixels``: (H, W) or (frames, H, W) values (HU for CT, stored with slope 1 and intercept -1024; raw
    unsigned values otherwise), or (H, W, 3) uint8 RGB. ``transfer_syntax``: ``explicit``, ``implicit``,
    ``rle`` (pydicom's own RLE encoder), ``jpeg`` (8-bit baseline JPEG by Pillow, encapsulated) or any UID.
    ``window``: (center, width) written as the file's own VOI. ``omit``: keywords to delete (missing tags).
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import (
        UID,
        CTImageStorage,
        ExplicitVRLittleEndian,
        ImplicitVRLittleEndian,
        JPEGBaseline8Bit,
        MRImageStorage,
        RLELossless,
        SecondaryCaptureImageStorage,
        UltrasoundImageStorage,
        generate_uid,
    )

    pixels = np.asarray(pixels)
    color = pixels.ndim == 3 and pixels.shape[-1] == 3 and pixels.dtype == np.uint8
    frames = 1 if color or pixels.ndim == 2 else pixels.shape[0]
    storage = {"CT": CTImageStorage, "MR": MRImageStorage, "US": UltrasoundImageStorage}.get(
        modality, SecondaryCaptureImageStorage
    )
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = storage
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid or generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = storage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = modality
    for keyword, value in (identity or {}).items():
        setattr(ds, keyword, value)
    ds.Rows, ds.Columns = (pixels.shape[0], pixels.shape[1]) if color else pixels.shape[-2:]
    if frames > 1:
        ds.NumberOfFrames = frames
    if color:
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, photometric or "RGB", 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        stored = pixels
    else:
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric or "MONOCHROME2"
        if modality == "CT":
            ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, CT_INTERCEPT, "HU"
            stored = (pixels.astype(np.int32) - int(CT_INTERCEPT)).astype(np.uint16)
        else:
            stored = pixels.astype(np.uint8 if transfer_syntax == "jpeg" else np.uint16)
        bits = 8 if stored.dtype == np.uint8 else 16
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = np.ascontiguousarray(stored).tobytes()
    if transfer_syntax == "implicit":
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    elif transfer_syntax == "rle":
        ds.compress(RLELossless, encoding_plugin="pydicom")
    elif transfer_syntax == "jpeg":
        from PIL import Image

        if stored.dtype != np.uint8:
            raise ValueError("baseline JPEG needs 8-bit pixels (modality other than CT, values 0..255)")
        encoded = []
        for frame in stored.reshape(frames, *stored.shape[-2:]) if not color else [stored]:
            buffer = io.BytesIO()
            Image.fromarray(frame).save(buffer, format="JPEG", quality=95)
            encoded.append(buffer.getvalue())
        ds.PixelData = encapsulate(encoded)
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    elif transfer_syntax != "explicit":
        ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + b"\x00" * 64])  # a stream no decoder will read
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = transfer_syntax
    for keyword in omit:
        if keyword in ds:
            delattr(ds, keyword)
    buffer = io.BytesIO()
    known = ("explicit", "implicit", "rle", "jpeg")
    private = transfer_syntax not in known and not UID(transfer_syntax).is_transfer_syntax
    ds.save_as(buffer, enforce_file_format=True, **({"implicit_vr": False, "little_endian": True} if private else {}))
    data = buffer.getvalue()
    return data if preamble else data[132:]


def labels_csv(rows: Iterable[Mapping[str, Any]]) -> bytes:
    """A labels.csv from dictionaries (the union of their keys, in first-seen order, is the header)."""
    rows = list(rows)
    header: list[str] = []
    for row in rows:
        header += [key for key in row if key not in header]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


def zip_bytes(entries: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def ct_study(
    images: np.ndarray,
    labels: Iterable[str],
    patients: Iterable[str],
    *,
    identity: Mapping[str, str] | None = None,
    folder: str = "export",
) -> tuple[dict[str, bytes], list[dict[str, Any]]]:
    """CT files (gray ``images`` as HU via :func:`hu_from_gray`) in a nested hospital-style layout under
    ``folder``, and their labels.csv rows (``file`` relative to ``folder``, ``label``); each file's DICOM PatientID
    is its patient."""
    entries: dict[str, bytes] = {}
    rows: list[dict[str, Any]] = []
    cases: dict[str, int] = {}
    for i, (image, label, patient) in enumerate(zip(images, labels, patients, strict=True)):
        tags = {**(identity or {}), "PatientID": patient}
        name = f"case{cases.setdefault(patient, len(cases)):03d}/series1/IM{i:04d}"
        entries[f"{folder}/{name}"] = dicom_bytes(hu_from_gray(image), identity=tags)
        rows.append({"file": name, "label": label})
    return entries, rows
