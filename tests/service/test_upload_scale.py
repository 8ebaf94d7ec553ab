"""Issue 14, uploads of lab size: an npz upload's arrays are read from the file on disk straight into their
buffers (no joined copy of the member bytes), stored without re-compression, and the default limits take
lab-sized sets while the decode budget still bounds each upload.

Peak memory is read from the kernel in a fresh child process (``VmHWM`` after a reset through
``/proc/self/clear_refs``); the control reads the same member the old way (its bytes joined in memory, then
parsed) and must exceed the bound, so the check can tell.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from support.memory import CAN_RESET_PEAK, run_measured

from app.api.routes.datasets import limits_from
from app.ingest import UploadError, parse_upload
from core.settings import Settings
from models.datasets import load_dataset

"""Child processes map every block over 1 MiB on its own and unmap it on free: freed memory is never reused
unseen, so the peak counts every large allocation."""
MiB = 1024 * 1024


def _npz_bytes(n: int, side: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, count in (("train", n), ("val", n // 5), ("test", n // 5)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (count, side, side), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(count) % 2).reshape(-1, 1)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_default_limits_take_lab_sized_sets() -> None:
    settings = Settings()
    pixels = {
        "20k x 256^2": 20_000 * 256 * 256,
        "100k x 128^2": 100_000 * 128**2,
        "20k x 128^2 RGB": 20_000 * 128**2 * 3,
    }
    for name, values in pixels.items():
        assert values <= settings.dataset_max_pixels, name
        assert values <= settings.upload_max_decoded_bytes, name  # uint8: one byte a value
        assert values + MiB <= settings.upload_max_bytes and values <= settings.zip_max_uncompressed_bytes, name


@pytest.mark.skipif(not CAN_RESET_PEAK, reason="needs Linux /proc peak-RSS reset")
def test_npz_upload_reads_from_disk_into_its_arrays_and_stores_uncompressed(tmp_path: Path) -> None:
    """6000 + 2 × 1200 images of 64² (34 MB of pixels, all splits present so nothing is carved)."""
    source = tmp_path / "lab.npz"
    source.write_bytes(_npz_bytes(6000, 64))
    stored = tmp_path / "stored.npz"
    figures = run_measured(
        f"""
        import zipfile
        from pathlib import Path
        from app.api.routes.datasets import limits_from
        from app.ingest import parse_upload
        from core.settings import Settings
        from models.datasets import save_npz
        from models.datasets.npz import read_npy
        limits = limits_from(Settings())
        source, stored = Path({str(source)!r}), Path({str(stored)!r})
        warm = Path({str(tmp_path / "warm.npz")!r})
        np.savez(warm, train_images=np.zeros((40, 8, 8), np.uint8), train_labels=np.arange(40) % 2)
        parse_upload(warm, limits, filename="warm.npz")  # imports and first-use buffers
        def upload():
            parsed = parse_upload(source, limits, filename="lab.npz")
            save_npz(parsed.imageset, stored)
            return parsed
        pixels = 8400 * 64 * 64 / 2**20
        grown = growth_mb(upload)
        def joined():
            with zipfile.ZipFile(source) as archive:
                return read_npy(archive.read("train_images.npy"))
        control = growth_mb(joined)
        print(json.dumps({{"pixels": pixels, "upload": grown, "control": control}}))
        """
    )
    train_mb = 6000 * 64 * 64 / MiB
    assert figures["control"] > 1.8 * train_mb, figures  # bytes and array at once: the measurement sees it
    # the arrays once, plus the 16 MiB piece np.savez copies at a time (the old path: twice the pixels and more)
    assert figures["upload"] < figures["pixels"] + 24, figures
    with zipfile.ZipFile(stored) as archive:
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}
    back, original = load_dataset(stored), np.load(source)
    assert np.array_equal(back.splits["train"].images[..., 0], original["train_images"])
    assert np.array_equal(back.splits["test"].labels, original["test_labels"][:, 0])


def test_the_decode_budget_still_bounds_an_npz_upload(tmp_path: Path) -> None:
    path = tmp_path / "big.npz"
    path.write_bytes(_npz_bytes(600, 32))
    tight = limits_from(Settings().model_copy(update={"upload_max_decoded_bytes": 400 * 32 * 32}))
    with pytest.raises(UploadError) as refused:
        parse_upload(path, tight, filename="big.npz")
    assert refused.value.status == 413 and "memory budget" in refused.value.detail


def test_a_stored_npz_member_that_claims_fewer_bytes_is_refused(tmp_path: Path) -> None:
    """A member whose header says N bytes but whose stream holds more is stopped at the header's size."""
    data = bytearray(_npz_bytes(50, 16))
    path = tmp_path / "lying.npz"
    path.write_bytes(bytes(data))
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("train_images.npy")
    patched = tmp_path / "patched.npz"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(patched, "w") as dst:
        for item in src.infolist():
            payload = src.read(item)
            if item.filename == info.filename:
                payload += b"\0" * 4096  # more array bytes than the header declares
            dst.writestr(item.filename, payload)
    with pytest.raises(UploadError) as refused:
        parse_upload(patched, limits_from(Settings()), filename="patched.npz")
    assert refused.value.status == 422 and "holds" in refused.value.detail


def test_a_large_ish_npz_upload_through_the_api_is_stored_uncompressed(
    client: TestClient, alice: dict[str, str], settings: Settings
) -> None:
    body = _npz_bytes(1500, 64, seed=3)
    answer = client.post("/datasets", headers=alice, files={"file": ("lab.npz", body)})
    assert answer.status_code == 201, answer.text
    stored = sorted((settings.artifacts / "datasets" / answer.json()["id"]).glob("*.npz"))
    assert len(stored) == 1
    with zipfile.ZipFile(stored[0]) as archive:
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}
    assert answer.json()["num_images"] == 1500 + 300 + 300
    client.delete(f"/datasets/{answer.json()['id']}", headers=alice)
