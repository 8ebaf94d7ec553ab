"""Dataset uploads: good npz and ImageFolder zips are stored; every bad one gets a 4xx that says why and leaves
no file and no row behind."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select

from app.api.routes.datasets import limits_from
from app.ingest import UploadError, parse_upload
from app.main import create_app
from core.db.orm import Dataset, DatasetSplit
from core.db.session import Database
from core.settings import Settings
from models.datasets import ImageSet, load_dataset


def png(value: int, size: int = 16, mode: str = "L") -> bytes:
    rng = np.random.default_rng(value)
    shape = (size, size) if mode == "L" else (size, size, 3)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def make_zip(entries: dict[str, bytes | None], symlinks: tuple[str, ...] = ()) -> bytes:
    """A zip: ``None`` makes a directory entry; names in ``symlinks`` become symlink members."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            if data is None:
                archive.writestr(zipfile.ZipInfo(name if name.endswith("/") else name + "/"), b"")
            elif name in symlinks:
                info = zipfile.ZipInfo(name)
                info.external_attr = (0o120777 << 16) | 0x20
                archive.writestr(info, data)
            else:
                archive.writestr(name, data)
    return buffer.getvalue()


def folder(classes: dict[str, int], prefix: str = "", size: int = 16) -> dict[str, bytes | None]:
    return {f"{prefix}{cls}/{i}.png": png(hash((prefix, cls, i)) % 1000, size) for cls, n in classes.items()
            for i in range(n)}  # fmt: skip


def stored_files(settings: Settings) -> list[Path]:
    roots = [settings.artifacts / "datasets", settings.artifacts / "uploads"]
    return sorted(p for root in roots if root.exists() for p in root.rglob("*") if p.is_file())


def dataset_rows(db: Database) -> tuple[int, int]:
    with db.session() as session:
        return (session.scalar(select(func.count()).select_from(Dataset)) or 0,
                session.scalar(select(func.count()).select_from(DatasetSplit)) or 0)  # fmt: skip


@pytest.fixture
def nothing_left(settings: Settings, db: Database) -> Iterator[None]:
    """Asserts that the test left no new file under datasets/ or uploads/ and no new dataset row."""
    files, rows = stored_files(settings), dataset_rows(db)
    yield
    assert stored_files(settings) == files
    assert dataset_rows(db) == rows


def upload(client: TestClient, headers: dict[str, str], data: bytes, filename: str = "data.zip",
           **fields: str):  # fmt: skip
    return client.post("/datasets", headers=headers, files={"file": (filename, data)}, data=fields)


BAD_UPLOADS = {
    "zip-slip": (make_zip({**folder({"a": 2, "b": 2}), "a/../../evil.png": png(1)}), "path traversal"),
    "absolute path": (make_zip({**folder({"a": 2, "b": 2}), "/etc/evil.png": png(1)}), "absolute"),
    "symlink": (make_zip({**folder({"a": 2, "b": 2}), "a/link.png": b"/etc/passwd"}, symlinks=("a/link.png",)),
                "symbolic link"),
    "zip bomb": (make_zip({**folder({"a": 2, "b": 2}), "a/bomb.png": b"\0" * 30_000_000}), "zip bomb"),
    "truncated png": (make_zip({**folder({"a": 2, "b": 2}), "a/cut.png": png(7, 64)[:300]}), "truncated"),
    "non-image": (make_zip({**folder({"a": 2, "b": 2}), "a/notes.txt": b"these are not pixels"}), "not an image"),
    "empty class": (make_zip({**folder({"a": 2, "c": 2}), "b/": None}), "empty class"),
    "wrong layout (depths)": (make_zip({**folder({"a": 2, "b": 2}), "train/a/x/deep.png": png(3)}), "wrong layout"),
    "wrong layout (split name)": (make_zip(folder({"a": 2, "b": 2}, "training-set/") | folder({"a": 1}, "x/")),
                                  "wrong layout"),
    "mixed sizes": (make_zip({**folder({"a": 2, "b": 2}), "b/big.png": png(5, 32)}), "differ in size"),
    "one class": (make_zip(folder({"a": 3})), "at least 2 classes"),
    "encrypted-looking name": (make_zip({**folder({"a": 2, "b": 2}), "a\\..\\x.png": png(2)}), "backslash"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_UPLOADS))
def test_bad_zip_is_refused(case: str, client: TestClient, alice: dict[str, str], nothing_left: None) -> None:
    data, expected = BAD_UPLOADS[case]
    response = upload(client, alice, data)
    assert 400 <= response.status_code < 500, response.text
    assert expected in response.json()["detail"], response.json()


def _npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_bad_npz_is_refused(client: TestClient, alice: dict[str, str], nothing_left: None) -> None:
    images = np.zeros((6, 8, 8), np.uint8)
    labels = np.array([[0], [1], [0], [1], [0], [1]])
    cases = {
        "missing labels": (_npz(train_images=images), "train_labels"),
        "float images": (_npz(train_images=images.astype(np.float32), train_labels=labels), "uint8"),
        "label count": (_npz(train_images=images, train_labels=labels[:4]), "labels"),
        "empty class": (_npz(train_images=images, train_labels=labels * 2), "empty class"),
        "object array": (_npz(train_images=images, train_labels=labels,
                              val_images=np.array([{"x": 1}], dtype=object)), "cannot be read safely"),
        "multi-label": (_npz(train_images=images, train_labels=np.ones((6, 3), np.int64)), "multi-label"),
    }  # fmt: skip
    for name, (data, expected) in cases.items():
        response = upload(client, alice, data, "data.npz")
        assert response.status_code == 422, (name, response.text)
        assert expected in response.json()["detail"], (name, response.json())


def test_not_an_archive_and_not_multipart(client: TestClient, alice: dict[str, str], nothing_left: None) -> None:
    response = upload(client, alice, b"GIF89a this is no dataset", "data.zip")
    assert response.status_code == 415
    response = client.post("/datasets", headers=alice, content=b"{}", params={"x": 1})
    assert response.status_code == 415
    response = client.post("/datasets", headers=alice, data={"name": "no file"}, files={})
    assert response.status_code in (415, 422)


def test_upload_over_the_byte_cap_is_413(settings: Settings, alice: dict[str, str], nothing_left: None) -> None:
    small = settings.model_copy(update={"upload_max_bytes": 20_000})
    with TestClient(create_app(small)) as capped:
        body = make_zip(folder({"a": 30, "b": 30}, size=32))
        assert len(body) > 20_000
        assert upload(capped, alice, body).status_code == 413

        def chunks():  # no Content-Length: the cap must hold while streaming
            boundary = b"XyZ"
            yield b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="d.zip"\r\n\r\n'
            for start in range(0, len(body), 4096):
                yield body[start : start + 4096]
            yield b"\r\n--" + boundary + b"--\r\n"

        response = capped.post("/datasets", headers={**alice, "Content-Type": "multipart/form-data; boundary=XyZ"},
                               content=chunks())  # fmt: skip
        assert response.status_code == 413


def test_uncompressed_total_cap(settings: Settings, alice: dict[str, str], nothing_left: None) -> None:
    small = settings.model_copy(update={"zip_max_uncompressed_bytes": 50_000, "zip_max_members": 1000})
    with TestClient(create_app(small)) as capped:
        response = upload(capped, alice, make_zip({**folder({"a": 2, "b": 2}), "a/zeros.png": b"\0" * 60_000}))
        assert response.status_code == 413 and "zip bomb" in response.json()["detail"]
    few = settings.model_copy(update={"zip_max_members": 3})
    with TestClient(create_app(few)) as capped:
        response = upload(capped, alice, make_zip(folder({"a": 2, "b": 2})))
        assert response.status_code == 422 and "members" in response.json()["detail"]


def test_imagefolder_zip_with_and_without_splits(client: TestClient, alice: dict[str, str],
                                                 settings: Settings) -> None:  # fmt: skip
    plain = make_zip({**folder({"cyst": 10, "hemangioma": 20}, "lab-export/"), "__MACOSX/._x": b"junk",
                      "lab-export/.DS_Store": b"junk"})  # fmt: skip
    response = upload(client, alice, plain, name="liver")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "liver" and body["format"] == "imagefolder" and body["classes"] == ["cyst", "hemangioma"]
    assert body["channels"] == 1 and body["image_size"] == [16, 16] and body["num_images"] == 30
    counts = body["counts"]  # carved by the one rule: 70/15/15 per class, rounded half up
    assert counts["train"] == {"cyst": 6, "hemangioma": 14} and counts["test"] == {"cyst": 2, "hemangioma": 3}
    assert counts["val"] == {"cyst": 2, "hemangioma": 3}
    assert list((settings.artifacts / "datasets" / body["id"]).iterdir())[0].name == "data.npz"

    split = make_zip({**folder({"a": 3, "b": 3}, "train/"), **folder({"a": 1, "b": 1}, "val/"),
                      **folder({"a": 2, "b": 2}, "test/"), "train/b/rgb.png": png(9, 16, "RGB")})  # fmt: skip
    response = upload(client, alice, split, image_size="12")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["channels"] == 3 and body["image_size"] == [12, 12]
    assert body["counts"] == {"train": {"a": 3, "b": 4}, "val": {"a": 1, "b": 1}, "test": {"a": 2, "b": 2}}

    with np.load(settings.artifacts / "datasets" / body["id"] / "data.npz") as stored:
        assert stored["train_images"].shape == (7, 12, 12, 3) and stored["train_labels"].shape == (7, 1)
        assert stored["class_names"].tolist() == ["a", "b"]


def test_npz_upload_list_get_delete(client: TestClient, alice: dict[str, str], slice_bytes: bytes,
                                    settings: Settings) -> None:  # fmt: skip
    response = upload(client, alice, slice_bytes, "breast.npz", name="to-delete")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["counts"]["train"] == {"0": 40, "1": 40} and body["image_size"] == [28, 28]
    assert len(body["sha256"]) == 64
    listed = client.get("/datasets", headers=alice, params={"limit": 1}).json()
    assert listed["count"] >= 1 and len(listed["data"]) == 1
    assert client.get(f"/datasets/{body['id']}", headers=alice).json()["name"] == "to-delete"
    assert client.delete(f"/datasets/{body['id']}", headers=alice).status_code == 204
    assert client.get(f"/datasets/{body['id']}", headers=alice).status_code == 404
    assert not (settings.artifacts / "datasets" / body["id"]).exists()


# ------------------------------------------------------------------ one reader behind every entrance


def _same_images(tmp_path: Path) -> tuple[Path, dict[str, bytes | None], bytes]:
    """One set of images three ways: a folder on disk, a zip of that folder, a train-only npz (folder order)."""
    per_class = {"benign": 9, "malignant": 14}
    root = tmp_path / "lab"
    entries: dict[str, bytes | None] = {}
    images, labels = [], []
    for k, (cls, n) in enumerate(per_class.items()):
        for i in range(n):
            data = png(100 * k + i)
            (root / cls).mkdir(parents=True, exist_ok=True)
            (root / cls / f"{i:02d}.png").write_bytes(data)
            entries[f"lab/{cls}/{i:02d}.png"] = data
            images.append(np.asarray(Image.open(io.BytesIO(data))))
            labels.append(k)
    npz = _npz(train_images=np.stack(images), train_labels=np.array(labels).reshape(-1, 1),
               class_names=np.array(list(per_class)))  # fmt: skip
    return root, entries, npz


def _assert_same(a: ImageSet, b: ImageSet) -> None:
    assert a.class_names == b.class_names and list(a.splits) == list(b.splits) == ["train", "val", "test"]
    for split in a.splits:
        np.testing.assert_array_equal(a.splits[split].images, b.splits[split].images)
        np.testing.assert_array_equal(a.splits[split].labels, b.splits[split].labels)


def test_every_entrance_gives_the_same_split(tmp_path: Path, settings: Settings, client: TestClient,
                                             alice: dict[str, str]) -> None:  # fmt: skip
    """Upload (zip or npz), ``genmix run --dataset`` (folder or npz) and the worker (the stored upload) agree."""
    root, entries, npz = _same_images(tmp_path)
    (tmp_path / "lab.zip").write_bytes(make_zip(entries))
    (tmp_path / "lab.npz").write_bytes(npz)
    limits = limits_from(settings)
    on_disk = load_dataset(root)  # the CLI / worker reader
    assert on_disk.counts() == {"train": [7, 10], "val": [1, 2], "test": [1, 2]}
    _assert_same(parse_upload(tmp_path / "lab.zip", limits, filename="lab.zip").imageset, on_disk)
    _assert_same(parse_upload(tmp_path / "lab.npz", limits, filename="lab.npz").imageset, on_disk)
    _assert_same(load_dataset(tmp_path / "lab.npz"), on_disk)
    response = upload(client, alice, make_zip(entries))
    assert response.status_code == 201, response.text
    stored = settings.artifacts / "datasets" / response.json()["id"] / "data.npz"
    _assert_same(load_dataset(stored), on_disk)  # what a worker reads for a job on this upload


UNUSABLE = {
    "too few to carve": (make_zip(folder({"a": 6, "b": 2})), "data.zip", "class 'b' has 2 training image(s), too few"),
    "class absent from test": (make_zip({**folder({"a": 3, "b": 3}, "train/"), **folder({"a": 1, "b": 1}, "val/"),
                                         **folder({"a": 1}, "test/")}), "data.zip",
                               "class(es) ['b'] have no images in the test split"),
    "class absent from val (npz)": (_npz(train_images=np.zeros((6, 8, 8), np.uint8), train_labels=np.arange(6) % 2,
                                         val_images=np.zeros((2, 8, 8), np.uint8), val_labels=np.zeros(2, np.int64)),
                                    "data.npz", "class(es) ['1'] have no images in the val split"),
    "more names than classes": (_npz(train_images=np.zeros((8, 8, 8), np.uint8), train_labels=np.arange(8) % 2,
                                     class_names=np.array(["a", "b", "c"])), "data.npz", "3 class names for 2 classes"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(UNUSABLE))
def test_unusable_dataset_is_refused_at_upload(case: str, client: TestClient, alice: dict[str, str],
                                               nothing_left: None) -> None:  # fmt: skip
    data, filename, reason = UNUSABLE[case]
    response = upload(client, alice, data, filename)
    assert response.status_code == 422, response.text
    assert reason in response.json()["detail"], response.json()


def test_too_many_pixels_is_413_and_messages_are_bounded(settings: Settings, alice: dict[str, str], tmp_path: Path,
                                                         nothing_left: None) -> None:  # fmt: skip
    small = settings.model_copy(update={"dataset_max_pixels": 16 * 16 * 5})
    with TestClient(create_app(small)) as capped:
        response = upload(capped, alice, make_zip(folder({"a": 3, "b": 3})))
        assert response.status_code == 413 and "more than 1280 pixel values" in response.json()["detail"]
    long_name = "x" * 5000
    path = tmp_path / "long.zip"
    path.write_bytes(make_zip({**folder({"a": 4, "b": 4}), f"a/{long_name}.txt": b"not pixels"}))
    with pytest.raises(UploadError) as err:
        parse_upload(path, limits_from(settings), filename=f"{long_name}.zip")
    assert err.value.status == 422 and "not an image" in err.value.detail and len(err.value.detail) < 600
