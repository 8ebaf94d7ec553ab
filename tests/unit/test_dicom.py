"""DICOM with a labels table, read by the one torch-free reader: pixels to images by the stated rules (HU and CT
windows, the file's VOI, percentiles, MONOCHROME1, multi-frame, compressed transfer syntaxes), refusals that name
the file and the problem, ROI crops, and patient-grouped carving by the one carving rule. DICOM files are built
with pydicom from the shared datasets' real images (tests/support/dicom.py); nothing is downloaded."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.dicom import IDENTITY, ct_study, dicom_bytes, hu_from_gray, labels_csv

from models.datasets import (
    WINDOW_PRESETS,
    WINDOWS,
    DatasetError,
    PixelRules,
    ReadOptions,
    Split,
    carve_missing,
    decode_file,
    load_dataset,
)
from models.datasets.table import roi_square

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gray(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The first 24 BreastMNIST training images (28x28) and their labels."""
    with np.load(data_dir / "breastmnist.npz") as data:
        return data["train_images"][:24], data["train_labels"][:24, 0]


def decode(data: bytes, **rules: object) -> np.ndarray:
    return decode_file(data, "x.dcm", ReadOptions(pixels=PixelRules(**rules))).pixels[..., 0]


def write_tree(root: Path, entries: dict[str, bytes]) -> Path:
    for name, data in entries.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


# ------------------------------------------------------------------------------------------- pixels to images


def test_ct_hu_through_the_abdomen_window_gives_the_image_back(gray) -> None:
    images, _ = gray
    for image in images[:4]:
        data = dicom_bytes(hu_from_gray(image))  # stored = HU + 1024, slope 1, intercept -1024
        np.testing.assert_array_equal(decode(data), image)  # the default window is abdomen (W 400, L 40)
        np.testing.assert_array_equal(decode(data, window="custom", window_width=400, window_level=40), image)
    lung = decode(dicom_bytes(hu_from_gray(images[0])), window="lung")
    assert lung.min() > 190 and np.ptp(lung.astype(int)) < np.ptp(images[0].astype(int)) / 2  # soft tissue: pale


def test_window_presets_follow_the_dicom_linear_window() -> None:
    hu = np.array([[-1000, -600, 0, 40, 400, 1200]], dtype=np.int16)
    data = dicom_bytes(hu)
    for name, (width, level) in WINDOW_PRESETS.items():
        expected = np.clip(((hu - (level - 0.5)) / (width - 1) + 0.5) * 255, 0, 255)
        np.testing.assert_allclose(decode(data, window=name), np.rint(expected), atol=0, err_msg=name)
    assert set(WINDOWS) == {*WINDOW_PRESETS, "file", "custom"}


def test_the_files_own_voi_window_and_other_modalities_by_percentiles(gray) -> None:
    image = gray[0][0]
    own = dicom_bytes(hu_from_gray(image), window=(40, 400))
    np.testing.assert_array_equal(decode(own, window="file"), image)  # its VOI is the abdomen window
    wide = dicom_bytes(hu_from_gray(image), window=(40, 4000))
    assert np.ptp(decode(wide, window="file").astype(int)) < np.ptp(image.astype(int))
    ramp = np.arange(100 * 100, dtype=np.uint16).reshape(100, 100) * 3  # MR: raw values, no HU
    mr = decode(dicom_bytes(ramp, modality="MR"))
    low, high = np.percentile(ramp, [1, 99])
    expected = np.rint(np.clip((ramp - low) / (high - low), 0, 1) * 255)
    assert np.abs(mr.astype(int) - expected).max() <= 1 and mr.min() == 0 and mr.max() == 255
    assert decode(dicom_bytes(ramp, modality="MR"), window="lung").tolist() == mr.tolist()  # CT windows: CT only
    no_voi = decode(dicom_bytes(hu_from_gray(image)), window="file")  # 'file' without a VOI: percentiles
    assert no_voi.min() == 0 and no_voi.max() == 255


def test_monochrome1_is_inverted_and_multiframe_follows_the_rule(gray) -> None:
    image = gray[0][1]
    inverted = decode_file(dicom_bytes(hu_from_gray(image), photometric="MONOCHROME1"), "x.dcm", ReadOptions())
    np.testing.assert_array_equal(inverted.pixels[..., 0], 255 - image)
    assert inverted.inverted and inverted.rule == "ct_window"
    frames = gray[0][:3]
    data = dicom_bytes(hu_from_gray(frames))
    np.testing.assert_array_equal(decode(data), frames[1])  # middle = frame n // 2
    np.testing.assert_array_equal(decode(data, frames="first"), frames[0])
    np.testing.assert_array_equal(decode(data, frames="mip"), frames.max(axis=0))
    assert decode_file(data, "x.dcm", ReadOptions()).multiframe


def test_compressed_transfer_syntaxes_decode(gray) -> None:
    image = gray[0][2]
    rle = dicom_bytes(hu_from_gray(image), transfer_syntax="rle")  # pydicom's own RLE Lossless encoder
    np.testing.assert_array_equal(decode(rle), image)
    jpeg = dicom_bytes(image, modality="US", transfer_syntax="jpeg")  # baseline JPEG, decoded by GDCM or Pillow
    low, high = np.percentile(image, [1, 99])
    expected = np.clip((image.astype(float) - low) / (high - low), 0, 1) * 255
    assert np.abs(decode(jpeg).astype(float) - expected).mean() < 6  # lossy, but the same image
    implicit = dicom_bytes(hu_from_gray(image), transfer_syntax="implicit")
    np.testing.assert_array_equal(decode(implicit), image)
    rgb = np.stack([image, 255 - image, image // 2], axis=-1)
    colour = decode_file(dicom_bytes(rgb, modality="US"), "x.dcm", ReadOptions())
    np.testing.assert_array_equal(colour.pixels, rgb)
    assert colour.rule == "color"


BAD_FILES = {
    "not DICOM": (lambda im: dicom_bytes(im, preamble=False), "not DICOM"),
    "truncated header": (lambda im: dicom_bytes(im)[:300], "has no pixel data (it is truncated"),
    "no pixel data": (lambda im: dicom_bytes(im, omit=("PixelData",)), "has no pixel data"),
    "missing rows": (lambda im: dicom_bytes(im, omit=("Rows",)), "missing DICOM tags needed to decode its pixels: "
                                                                  "Rows (0028,0010)"),
    "unsupported transfer syntax": (lambda im: dicom_bytes(im, transfer_syntax="1.2.840.10008.1.2.4.100"),
                                    "unsupported transfer syntax MPEG2 Main Profile / Main Level"),
    "private transfer syntax": (lambda im: dicom_bytes(im, transfer_syntax="1.2.3.4.5.6"),
                                "unsupported transfer syntax 1.2.3.4.5.6"),
    "truncated pixel data": (lambda im: dicom_bytes(im)[:-200], "its pixel data could not be decoded"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_dicom_files_are_refused_naming_file_and_problem(case: str, gray) -> None:
    build, expected = BAD_FILES[case]
    data = build(hu_from_gray(gray[0][0]))
    with pytest.raises(DatasetError) as err:
        decode_file(data, "lab.zip/scans/IM0007", ReadOptions(), suffix=".dcm")
    message = str(err.value)
    assert message.startswith("lab.zip/scans/IM0007: ") and expected in message, message
    assert len(message) < 400


def test_the_pixel_cap_is_checked_from_the_header(gray) -> None:
    data = dicom_bytes(hu_from_gray(gray[0][0]))
    with pytest.raises(DatasetError, match="28x28 is over the 100 pixel limit"):
        decode_file(data, "x.dcm", ReadOptions(image_max_pixels=100))
    frames = dicom_bytes(hu_from_gray(np.repeat(gray[0][:1], 65, axis=0)))  # 65 frames > 64 x the cap
    with pytest.raises(DatasetError, match="too many pixel values for a maximum-intensity projection"):
        decode_file(frames, "x.dcm", ReadOptions(image_max_pixels=28 * 28, pixels=PixelRules(frames="mip")))
    assert decode_file(frames, "x.dcm", ReadOptions(image_max_pixels=28 * 28)).multiframe  # one frame: fine


def test_pixel_rules_are_validated() -> None:
    assert PixelRules.from_fields(window_width=300, window_level=50).window == "custom"
    for bad in ({"window": "spine"}, {"window": "custom"}, {"window": "lung", "window_width": 10},
                {"frames": "last"}, {"roi": "blur"}, {"roi_margin": 5}, {"window": "custom", "window_width": 0,
                                                                           "window_level": 0}):  # fmt: skip
        with pytest.raises(DatasetError):
            PixelRules.from_fields(**bad)


# ------------------------------------------------------------------------------------------ labels.csv layout


def test_labels_csv_folder_reads_dicom_by_file_and_by_uid(gray, tmp_path: Path) -> None:
    images, labels = gray
    names = ["benign" if k else "malignant" for k in labels]
    within = [int((labels[:i] == labels[i]).sum()) for i in range(len(labels))]
    patients = [f"P{k}-{j // 2}" for k, j in zip(labels, within, strict=True)]  # two images per patient, one class
    entries, rows = ct_study(images, names, patients, identity=IDENTITY)
    uids = {}
    for i, row in enumerate(rows[:6]):  # six rows find their file by SOPInstanceUID instead
        uid = f"1.2.826.0.1.3680043.8.498.{1000 + i}"
        entries[f"export/{row['file']}"] = dicom_bytes(
            hu_from_gray(images[i]), identity={"PatientID": patients[i]}, sop_uid=uid
        )
        rows[i] = {"sop_instance_uid": uid, "label": names[i]}
        uids[uid] = i
    entries["export/DICOMDIR-notes.txt"] = b"not an image, named by no row: ignored"
    entries["export/labels.csv"] = labels_csv(rows)  # in the one wrapping folder, paths relative to it
    loaded = load_dataset(write_tree(tmp_path / "lab", entries))
    assert loaded.class_names == ["benign", "malignant"] and loaded.num_images == len(images)
    assert loaded.decode["window"] == {"name": "abdomen", "width": 400.0, "level": 40.0}
    assert loaded.decode["images"] == {"ct_window": len(images)}
    all_images = np.concatenate([s.images[..., 0] for s in loaded.splits.values()])
    assert sorted(map(bytes, all_images)) == sorted(map(bytes, images))  # every image, exactly as it was
    by_split = {name: set(split.patients.tolist()) for name, split in loaded.splits.items()}
    assert not (by_split["train"] & by_split["val"] or by_split["train"] & by_split["test"]
                or by_split["val"] & by_split["test"])  # fmt: skip
    assert loaded.patients() == {name: len(found) for name, found in by_split.items()}
    assert sum(loaded.patients().values()) == len(set(patients)) == 13


def test_explicit_splits_roi_boxes_masks_and_png(gray, tmp_path: Path) -> None:
    images, _ = gray
    entries: dict[str, bytes] = {}
    rows = []
    for i in range(12):
        split = ("train", "train", "val", "test")[i % 4]
        name = f"scans/{i}.dcm" if i % 3 else f"photos/{i}.png"
        if name.endswith(".png"):
            buffer = io.BytesIO()
            Image.fromarray(images[i]).save(buffer, format="PNG")
            entries[name] = buffer.getvalue()
        else:
            entries[name] = dicom_bytes(hu_from_gray(images[i]))
        row = {"file": name, "label": "ab"[(i // 4) % 2], "split": split, "patient_id": f"p{i}"}
        if i == 4:
            row["mask"] = "masks/4.png"
            mask = np.zeros((28, 28), np.uint8)
            mask[10:14, 5:9] = 255
            buffer = io.BytesIO()
            Image.fromarray(mask).save(buffer, format="PNG")
            entries["masks/4.png"] = buffer.getvalue()
        else:
            row.update({"x0": 4, "y0": 6, "x1": 20, "y1": 14})
        rows.append(row)
    entries["labels.csv"] = labels_csv(rows)
    root = write_tree(tmp_path / "lab", entries)
    loaded = load_dataset(root, ReadOptions(image_size=16))
    assert loaded.counts() == {"train": [4, 2], "val": [2, 1], "test": [2, 1]}
    assert loaded.image_size == (16, 16) and loaded.decode["image_size"] == 16
    assert loaded.decode["images"] == {"cropped": 12, "ct_window": 8, "image": 4}
    assert loaded.patients() == {"train": 6, "val": 3, "test": 3}
    # the crop is the ROI's square with margin, resized: compare one DICOM row with the rule done by hand
    left, top, right, bottom = roi_square((4, 6, 20, 14), (28, 28), 0.2)
    assert (left, top, right, bottom) == (1, 0, 23, 22)  # side 16 x 1.4 = 22, centred on (12, 10), moved inside
    expected = np.asarray(Image.fromarray(images[1][top:bottom, left:right]).resize((16, 16), Image.Resampling.LANCZOS))
    np.testing.assert_array_equal(loaded.train.images[1, ..., 0], expected)  # row 1 is train's second image
    whole = load_dataset(root, ReadOptions(pixels=PixelRules(roi="ignore")))
    assert whole.image_size == (28, 28) and "cropped" not in whole.decode["images"]


def _table(tmp_path: Path, gray, rows_change=None, extra=None, rows=None) -> Path:
    images, _ = gray
    entries = {f"s/{i}.dcm": dicom_bytes(hu_from_gray(images[i]), identity={"PatientID": f"p{i // 2}"})
               for i in range(12)}  # six patients, two images each  # fmt: skip
    rows = rows or [{"file": f"s/{i}.dcm", "label": "ab"[(i // 2) % 2]} for i in range(12)]
    if rows_change:
        rows_change(rows)
    entries.update(extra or {})
    entries["labels.csv"] = labels_csv(rows)
    return write_tree(tmp_path / "lab", entries)


def _set(index: int, **values):
    def change(rows):
        rows[index] = {**rows[index], **values}

    return change


BAD_TABLES = {
    "missing file": (_set(3, file="s/none.dcm"), None, r"labels\.csv line 5: file 's/none\.dcm' is not in"),
    "unknown label": (_set(2, label="c"), None, r"line 4: unknown label 'c'; the classes are \['a', 'b'\]"),
    "roi outside": (_set(1, x0=0, y0=0, x1=30, y1=10), None, r"the ROI 0,0,30,10 is outside the 28x28 image"),
    "empty roi": (_set(1, x0=5, y0=0, x1=5, y1=10), None, r"line 3: the ROI box 5,0,5,10 is empty"),
    "patient in two splits": (lambda rows: [rows[0].update(split="train"), rows[1].update(split="test")], None,
                              r"s/1\.dcm\): this image's patient also has images in the train split"),
    "unknown column": (_set(0, notes="x"), None, r"unknown column\(s\) \['notes'\]"),
    "not dicom": (None, {"s/3.dcm": b"just text"}, r"s/3\.dcm: not DICOM"),
    "inconsistent sizes": (None, {"s/3.dcm": dicom_bytes(np.zeros((20, 28), np.int16))},
                           r"s/3\.dcm\): size 28x20 differs from .* images differ in size"),
    "patients partly known": (None, {"s/5.dcm": dicom_bytes(np.zeros((28, 28), np.int16))},
                              r"line 7 \(.*s/5\.dcm\): no patient id"),
    "uid not found": (_set(4, file="", sop_instance_uid="1.2.3.999"), None,
                      r"line 6: no DICOM file in .* has this sop_instance_uid"),
}  # fmt: skip


def test_a_good_table_carves_by_patient(gray, tmp_path: Path) -> None:
    from models.datasets import DirTree, read_table_tree

    loaded = read_table_tree(DirTree(_table(tmp_path, gray), 16), name="lab")
    assert loaded.patients() == {"train": 2, "val": 2, "test": 2}  # 3 patients per class: 1 / 1 / 1
    assert loaded.counts() == {"train": [2, 2], "val": [2, 2], "test": [2, 2]}


@pytest.mark.parametrize("case", sorted(BAD_TABLES))
def test_bad_tables_are_refused_naming_line_file_and_problem(case: str, gray, tmp_path: Path) -> None:
    change, extra, expected = BAD_TABLES[case]
    root = _table(tmp_path, gray, change, extra)
    with pytest.raises(DatasetError) as err:
        from models.datasets import DirTree, read_table_tree

        read_table_tree(DirTree(root, 16), name="lab", class_names=["a", "b"] if case == "unknown label" else None)
    assert re.search(expected, str(err.value)), str(err.value)
    for secret in ("p0", "p1", "1.2.826"):  # never a patient id or a UID in a message
        assert f"'{secret}'" not in str(err.value)


# --------------------------------------------------------------------------------- the one carving rule, by patient


def test_carving_by_patient_keeps_patients_whole_and_equals_the_per_image_rule_for_singletons() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 60)
    images = np.arange(60, dtype=np.uint8).reshape(-1, 1, 1, 1)
    per_image = carve_missing({"train": Split(images, labels)}, ["a", "b"], "x")
    singletons = carve_missing({"train": Split(images, labels, np.array([f"s{i}" for i in range(60)], object))},
                               ["a", "b"], "x")  # fmt: skip
    for name in per_image:
        np.testing.assert_array_equal(per_image[name].images, singletons[name].images)
    patients = np.array([f"p{i // 3}" for i in range(60)], dtype=object)  # 20 patients, 3 images each
    labels = np.repeat(rng.integers(0, 2, 20), 3)
    grouped = carve_missing({"train": Split(images, labels, patients)}, ["a", "b"], "x")
    seen = {name: set(split.patients.tolist()) for name, split in grouped.items()}
    assert not (seen["train"] & seen["val"] or seen["train"] & seen["test"] or seen["val"] & seen["test"])
    assert sum(map(len, seen.values())) == 20 and all(len(split) % 3 == 0 for split in grouped.values())
    with pytest.raises(DatasetError, match=r"class 'b' has 2 patient\(s\) in train, too few to carve val and test"):
        few = np.array(["p0"] * 3 + ["p1"] * 3 + ["p2"] * 2 + ["p3"] * 2 + ["p4"] * 2, dtype=object)
        carve_missing({"train": Split(images[:12], np.array([0] * 8 + [1] * 4), few)}, ["a", "b"], "x")


def test_the_upload_form_offers_every_window() -> None:
    html = (REPO_ROOT / "app" / "web" / "static" / "index.html").read_text()
    select = re.search(r'<select id="upload-window".*?</select>', html, re.S)
    assert select is not None
    assert re.findall(r'<option value="([^"]+)"', select.group(0)) == list(WINDOWS)


def test_genmix_run_reads_a_dicom_folder_with_its_choices(gray, tmp_path: Path) -> None:
    """``genmix run --dataset <folder>``: the same labels.csv layout from disk; the choices reach the report."""
    import json

    from click.testing import CliRunner

    from cli.main import main

    images, labels = gray
    within = [int((labels[:i] == labels[i]).sum()) for i in range(len(labels))]
    entries, rows = ct_study(
        images, ["ab"[k] for k in labels], [f"p{k}{j // 2}" for k, j in zip(labels, within, strict=True)]
    )
    entries["export/labels.csv"] = labels_csv(rows)
    root = write_tree(tmp_path / "lab", entries)
    out = tmp_path / "out"
    args = ["run", "--dataset", str(root), "--arms", "baseline", "--generators", "", "--epochs", "1", "--no-figures",
            "--window", "lung", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "pixels: CT window lung (W 1500, L -600 HU)" in result.output and "patients per split" in result.output
    decode = json.loads((out / "results.json").read_text())["dataset"]["decode"]
    assert decode["window"] == {"name": "lung", "width": 1500.0, "level": -600.0}
    assert "Pixels: CT window lung" in (out / "report.md").read_text()
    refused = CliRunner().invoke(main, ["run", "--dataset", str(root), "--window", "spine", "--out", str(out)])
    assert refused.exit_code == 2 and "window must be one of" in refused.output


def test_an_image_folder_of_dicom_files_groups_by_patient_id(gray, tmp_path: Path) -> None:
    """``<class>/<file>.dcm``: the DICOM PatientID groups the carving there too; PNGs beside them are refused."""
    images, _ = gray
    root = tmp_path / "folder"
    for i in range(24):
        path = root / "ab"[(i // 2) % 2] / f"{i:02d}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(dicom_bytes(hu_from_gray(images[i]), identity={"PatientID": f"p{i // 2}"}))
    loaded = load_dataset(root)
    assert loaded.patients() == {"train": 8, "val": 2, "test": 2} and loaded.decode["images"] == {"ct_window": 24}
    Image.fromarray(images[0]).save(root / "a" / "photo.png")
    with pytest.raises(DatasetError, match=r"photo\.png: no patient id \(no DICOM PatientID\)"):
        load_dataset(root)
