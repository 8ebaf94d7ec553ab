"""Lab data as hospitals hold it, through the service: a zip of DICOM files (any folders) with a labels.csv is
uploaded, windowed and carved by patient; bad ones get a 4xx naming the file and the problem and leave nothing
behind; and a quick job on such an upload serves samples and results in which no byte carries the patient names,
IDs or UIDs written into the files."""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from support.dicom import IDENTITY, ct_study, dicom_bytes, hu_from_gray, labels_csv, zip_bytes

from core.db.orm import Dataset, DatasetSplit
from core.db.session import Database
from core.settings import Settings
from service.helpers import WorkerProcess, quick_job, wait_for_status

PER_CLASS = 24  # 12 patients per class, two images each


def _secrets(entries: dict[str, bytes]) -> set[bytes]:
    """Every identifying value written into the files: names, IDs, dates, UIDs (and a name's parts)."""
    import pydicom

    found: set[str] = set()
    for data in entries.values():
        if data[128:132] != b"DICM":
            continue
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        for keyword in (*IDENTITY, "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
            if keyword in ds:
                value = str(ds.data_element(keyword).value)
                found |= {value, value.replace("^", " "), *value.split("^")}
    return {value.encode() for value in found if len(value) >= 6}


@pytest.fixture(scope="module")
def lab_zip(data_dir: Path) -> tuple[bytes, set[bytes], np.ndarray]:
    """A hospital-style export of real BreastMNIST images as CT: nested case folders, files without suffix, one
    MONOCHROME1, one multi-frame, one RLE-compressed, one found by SOPInstanceUID; identifying tags everywhere."""
    with np.load(data_dir / "breastmnist.npz") as data:
        images, labels = data["train_images"], data["train_labels"][:, 0]
    index = np.concatenate([np.flatnonzero(labels == k)[:PER_CLASS] for k in (0, 1)])
    images, labels = images[index], labels[index]
    names = ["malignant" if k == 0 else "benign" for k in labels]
    patients = [f"PID-93417-SECRET-{k}{(i % PER_CLASS) // 2:02d}" for i, k in enumerate(labels)]
    entries, rows = ct_study(images, names, patients, identity=IDENTITY, folder="hospital-export")
    special = {0: {"photometric": "MONOCHROME1"}, 2: {"transfer_syntax": "rle"}}

    def tags(i: int) -> dict[str, str]:
        return {**IDENTITY, "PatientID": patients[i]}

    for i, options in special.items():
        pixels = 255 - images[i] if "photometric" in options else images[i]  # MONOCHROME1: inverted on reading
        entries[f"hospital-export/{rows[i]['file']}"] = dicom_bytes(hu_from_gray(pixels), identity=tags(i), **options)
    frames = np.stack([images[1] // 2, images[1], images[1] // 3])  # the middle frame is the image
    entries[f"hospital-export/{rows[1]['file']}"] = dicom_bytes(hu_from_gray(frames), identity=tags(1))
    uid = "1.2.826.0.1.3680043.8.498.7777123"
    entries[f"hospital-export/{rows[3]['file']}"] = dicom_bytes(hu_from_gray(images[3]), identity=tags(3), sop_uid=uid)
    rows[3] = {"sop_instance_uid": uid, "label": names[3]}
    entries["hospital-export/labels.csv"] = labels_csv(rows)
    return zip_bytes(entries), _secrets(entries) | {p.encode() for p in patients}, images


@pytest.fixture(scope="module")
def lab_dataset(client: TestClient, alice: dict[str, str], lab_zip) -> dict[str, Any]:
    data, _, _ = lab_zip
    response = client.post("/datasets", headers=alice, files={"file": ("ct-export.zip", data)},
                           data={"window": "custom", "window_width": "400", "window_level": "40"})  # fmt: skip
    assert response.status_code == 201, response.text
    return response.json()


def test_dicom_upload_is_windowed_carved_by_patient_and_recorded(lab_dataset: dict[str, Any], lab_zip,
                                                                 settings: Settings) -> None:  # fmt: skip
    _, secrets, images = lab_zip
    body = lab_dataset
    assert body["format"] == "csv" and body["classes"] == ["benign", "malignant"] and body["image_size"] == [28, 28]
    assert body["counts"] == {"train": {"benign": 16, "malignant": 16}, "val": {"benign": 4, "malignant": 4},
                              "test": {"benign": 4, "malignant": 4}}  # 12 patients per class: 8 / 2 / 2  # fmt: skip
    assert body["patients"] == {"train": 16, "val": 4, "test": 4}
    decode = body["decode"]
    assert decode["window"] == {"name": "custom", "width": 400.0, "level": 40.0} and decode["frames"] == "middle"
    assert decode["images"] == {"ct_window": 2 * PER_CLASS, "inverted": 1, "multiframe": 1}
    with np.load(settings.artifacts / "datasets" / body["id"] / "data.npz") as stored:
        assert sorted(stored.files) == sorted(["class_names"] + [f"{s}_{k}" for s in ("train", "val", "test")
                                                                 for k in ("images", "labels")])  # fmt: skip
        served = np.concatenate([stored[f"{s}_images"] for s in ("train", "val", "test")])
        stored_bytes = (settings.artifacts / "datasets" / body["id"] / "data.npz").read_bytes()
    assert sorted(map(bytes, served)) == sorted(map(bytes, images))  # every image exactly, windowed back
    assert not [s for s in secrets if s in stored_bytes]  # the stored copy keeps pixels, labels, names only


# ------------------------------------------------------------------------------------------- refusals


def _stored(settings: Settings) -> list[Path]:
    roots = [settings.artifacts / "datasets", settings.artifacts / "uploads"]
    return sorted(p for root in roots if root.exists() for p in root.rglob("*") if p.is_file())


def _rows(db: Database) -> tuple[int, int]:
    with db.session() as session:
        return (session.scalar(select(func.count()).select_from(Dataset)) or 0,
                session.scalar(select(func.count()).select_from(DatasetSplit)) or 0)  # fmt: skip


@pytest.fixture
def nothing_left(settings: Settings, db: Database) -> Iterator[None]:
    files, rows = _stored(settings), _rows(db)
    yield
    assert _stored(settings) == files and _rows(db) == rows


def _small(change: dict[str, Any] | None = None, files: dict[str, bytes] | None = None,
           rows: list[dict[str, Any]] | None = None) -> bytes:  # fmt: skip
    """Eight CT files of four patients with a labels.csv; ``change`` edits row 3 (CSV line 5)."""
    gray = np.tile(np.arange(28, dtype=np.uint8) * 9, (28, 1))
    tags = [{**IDENTITY, "PatientID": f"PID-SECRET-{i // 2}"} for i in range(8)]
    entries = {f"scans/IM{i}.dcm": dicom_bytes(hu_from_gray(gray), identity=tags[i]) for i in range(8)}
    table = rows or [{"file": f"scans/IM{i}.dcm", "label": "ab"[(i // 2) % 2]} for i in range(8)]
    if change:
        table[3] = {**table[3], **change}
    entries.update(files or {})
    entries["labels.csv"] = labels_csv(table)
    return zip_bytes(entries)


BAD = {
    "not DICOM": (_small(files={"scans/IM3.dcm": dicom_bytes(np.zeros((28, 28), np.int16), preamble=False)}), {},
                  ["scans/IM3.dcm: not DICOM"]),
    "no pixel data": (_small(files={"scans/IM3.dcm": dicom_bytes(np.zeros((28, 28), np.int16), omit=("PixelData",))}),
                      {}, ["scans/IM3.dcm: the DICOM file has no pixel data"]),
    "unsupported transfer syntax": (_small(files={"scans/IM3.dcm": dicom_bytes(
        np.zeros((28, 28), np.int16), transfer_syntax="1.2.840.10008.1.2.4.100")}), {},
        ["scans/IM3.dcm: unsupported transfer syntax MPEG2 Main Profile / Main Level (1.2.840.10008.1.2.4.100)"]),
    "inconsistent sizes": (_small(files={"scans/IM3.dcm": dicom_bytes(np.zeros((20, 28), np.int16))}), {},
                           ["scans/IM3.dcm): size 28x20 differs from", "images differ in size"]),
    "row names a missing file": (_small({"file": "scans/IM9.dcm"}), {},
                                 ["labels.csv line 5: file 'scans/IM9.dcm' is not in"]),
    "unknown label": (_small({"label": "cyst"}), {"class_names": "a,b"},
                      ["labels.csv line 5: unknown label 'cyst'; the classes are ['a', 'b']"]),
    "ROI outside the image": (_small({"x0": 10, "y0": 10, "x1": 40, "y1": 20}), {},
                              ["scans/IM3.dcm): the ROI 10,10,40,20 is outside the 28x28 image"]),
    "patient in two explicit splits": (_small({"split": "test"}), {},
                                       ["scans/IM3.dcm): this image's patient also has images in the train split"]),
    "a window that does not exist": (_small(), {"window": "spine"}, ["window must be one of abdomen, liver"]),
    "width without custom": (_small(), {"window": "lung", "window_width": "300"}, ["go with window=custom"]),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_dicom_uploads_name_the_file_and_the_problem(case: str, client: TestClient, alice: dict[str, str],
                                                         nothing_left: None) -> None:  # fmt: skip
    data, fields, expected = BAD[case]
    response = client.post("/datasets", headers=alice, files={"file": ("lab.zip", data)}, data=fields)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    for part in expected:
        assert part in detail, detail
    assert "SECRET" not in detail and "Zyxwvut" not in detail and len(detail) < 600


# ------------------------------------------------------------------------- end to end, de-identified


def _png_chunks(data: bytes) -> list[bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        chunks.append(data[at + 4 : at + 8])
        at += 12 + length
    return chunks


def test_quick_job_on_a_dicom_upload_serves_nothing_identifying(client: TestClient, alice: dict[str, str],
                                                                 lab_dataset: dict[str, Any], lab_zip,
                                                                 worker: WorkerProcess) -> None:  # fmt: skip
    _, secrets, _ = lab_zip
    response = client.post("/jobs", headers=alice, json=quick_job(lab_dataset["id"]))
    assert response.status_code == 202, response.text
    job = wait_for_status(client, alice, response.json()["id"], {"succeeded", "failed", "cancelled"}, 300, worker)
    assert job["status"] == "succeeded", job["error"]
    assert job["results"]["dataset_decode"] == lab_dataset["decode"]  # the job reports the dataset's choices
    job_id = job["id"]
    served: dict[str, bytes] = {}

    def get(path: str, **params: Any) -> bytes:
        answer = client.get(path, headers=alice, params=params)
        assert answer.status_code == 200, (path, answer.text[:300])
        served[f"{path}?{params}"] = answer.content
        return answer.content

    get("/datasets")
    get(f"/datasets/{lab_dataset['id']}")
    get("/jobs")
    get(f"/jobs/{job_id}")
    get(f"/jobs/{job_id}/events", follow="false")
    samples = client.get("/samples", headers=alice, params={"job_id": job_id, "limit": 500}).json()["data"]
    get("/samples", job_id=job_id, limit=500)
    assert {s["kind"] for s in samples} == {"real", "synthetic", "genmix"}
    for sample in samples:
        png = get(f"/samples/{sample['id']}")
        chunks = _png_chunks(png)
        assert not {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"} & set(chunks), chunks
    artifacts = client.get(f"/jobs/{job_id}/artifacts", headers=alice, params={"limit": 500}).json()["data"]
    get(f"/jobs/{job_id}/artifacts", limit=500)
    assert {"results", "synthetic", "genmix_export"} <= {a["kind"] for a in artifacts}
    for artifact in artifacts:
        get(f"/jobs/{job_id}/artifacts/{artifact['id']}")
    results = next(a for a in artifacts if a["kind"] == "results")
    assert b'"decode"' in served[f"/jobs/{job_id}/artifacts/{results['id']}?{{}}"]
    assert len(secrets) > 50 and len(served) > 20
    leaks = [(where, secret) for where, body in served.items() for secret in secrets if secret in body]
    assert leaks == [], leaks[:5]
    zipped = [body for body in served.values() if body[:2] == b"PK"]  # npz artifacts: look inside the members too
    for body in zipped:
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            for member in archive.namelist():
                content = archive.read(member)
                assert not [s for s in secrets if s in content], member
