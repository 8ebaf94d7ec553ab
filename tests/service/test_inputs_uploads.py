"""Issue 11, items 1 and 3: what an upload's numbers size is bounded, and so is the memory an upload may take.

* Item 1: labels up to 2⁶² (no ``class_names``) made the reader build a list of 2⁶² class names; a refusal
  may quote only a bounded piece of what the client sent.
* Item 3: pixels are charged from each image's header against a per-upload budget before decoding; the
  compression ratio is checked over the whole archive (not only members over 1 MiB); at most
  ``GENMIX_UPLOAD_MAX_CONCURRENT`` uploads decode at once in one API process.
"""

from __future__ import annotations

import io
import threading
import time
import zipfile
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.api.routes import datasets as dataset_routes
from app.main import create_app
from core.settings import Settings
from service.helpers import quick_job

DETAIL_LIMIT = 2000  # app.errors.DETAIL_LIMIT


def _npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def _zeros_png(side: int, compress_level: int = 6) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(np.zeros((side, side), np.uint8), mode="L")
    image.save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def test_huge_labels_are_refused_before_any_per_class_list(api: TestClient, alice: dict[str, str]) -> None:
    images = np.zeros((40, 8, 8), np.uint8)
    # 20,000 first: without the bound it fails on the message (and an O(K²) name check), before 2**62 can
    # exhaust the host's memory as it did
    for top in (20_000, 2**62):
        labels = np.arange(40, dtype=np.int64) % 2
        labels[-1] = top
        body = _npz(train_images=images, train_labels=labels)
        assert len(body) < 40_000
        started = time.monotonic()
        response = api.post("/datasets", headers=alice, files={"file": ("labels.npz", body)})
        assert time.monotonic() - started < 5
        assert response.status_code == 422, response.text[:300]
        detail = response.json()["detail"]
        assert "at most 1000 classes" in detail and len(response.content) < 1000, detail[:300]


def test_refusals_echo_a_bounded_piece_of_the_input(api: TestClient, alice: dict[str, str],
                                                   dataset: dict[str, Any]) -> None:  # fmt: skip
    long = "x" * 150_000
    response = api.post("/jobs", headers=alice, json={"dataset_id": long})
    assert response.status_code in (413, 422) and len(response.content) < 4000, len(response.content)
    response = api.post("/jobs", headers=alice, json={**quick_job(dataset["id"]), "arms": ["y" * 100_000]})
    assert response.status_code == 422 and len(response.content) < 4000, len(response.content)
    names = ",".join(f"class-{i}-" + "n" * 150 for i in range(300))  # 45 KB of class names
    response = api.post("/datasets", headers=alice, files={"file": ("d.npz", _npz(train_images=np.zeros((4, 8, 8),
                        np.uint8), train_labels=np.array([0, 1, 0, 1])))}, data={"class_names": names})  # fmt: skip
    assert response.status_code == 422 and len(response.json()["detail"]) <= DETAIL_LIMIT, response.text[:300]


def test_compression_ratio_is_checked_over_the_whole_archive(api: TestClient, alice: dict[str, str]) -> None:
    """40 uncompressed-PNG members of 1 MB each (each under the 1 MiB floor) that deflate about 650:1."""
    png = _zeros_png(1000, compress_level=0)
    assert 1_000_000 < len(png) < 1024 * 1024
    body = _zip({f"{cls}/{i}.png": png for cls in ("a", "b") for i in range(20)})
    assert len(body) * 300 < 40 * len(png)
    response = api.post("/datasets", headers=alice, files={"file": ("bomb.zip", body)})
    assert response.status_code == 422, response.text[:300]
    assert "overall" in response.json()["detail"] and "zip bomb" in response.json()["detail"]


def test_pixels_are_charged_against_the_upload_budget_before_decoding(
    settings: Settings, alice: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten 1024² zero PNGs (~1 KB each on the wire, 10 MB of pixels) against a 4 MB budget: 413, and the fifth
    image is never decoded."""
    import models.datasets.decode as decode

    decoded: list[str] = []
    real = decode._decode_with_pillow

    def counting(data: bytes, where: str, options: Any) -> np.ndarray:
        decoded.append(where)
        return real(data, where, options)

    monkeypatch.setattr(decode, "_decode_with_pillow", counting)
    small = settings.model_copy(update={"upload_max_decoded_bytes": 4 * 1024 * 1024})
    body = _zip({f"{cls}/{i}.png": _zeros_png(1024) for cls in ("a", "b") for i in range(5)})
    assert len(body) < 60_000
    with TestClient(create_app(small)) as capped:
        response = capped.post("/datasets", headers=alice, files={"file": ("pixels.zip", body)})
    assert response.status_code == 413, response.text[:300]
    assert "memory budget" in response.json()["detail"]
    assert len(decoded) <= 4, decoded


def test_at_most_the_configured_number_of_uploads_decode_at_once(settings: Settings, alice: dict[str, str],
                                                                 slice_bytes: bytes,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    lock = threading.Lock()
    state = {"now": 0, "most": 0}
    real = dataset_routes.parse_upload

    def slow_parse(*args: Any, **kwargs: Any) -> Any:
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        try:
            time.sleep(0.4)
            return real(*args, **kwargs)
        finally:
            with lock:
                state["now"] -= 1

    monkeypatch.setattr(dataset_routes, "parse_upload", slow_parse)
    one = settings.model_copy(update={"upload_max_concurrent": 1})
    statuses: list[int] = []
    with TestClient(create_app(one)) as client:

        def send(i: int) -> None:
            response = client.post("/datasets", headers=alice, files={"file": ("b.npz", slice_bytes)},
                                   data={"name": f"concurrent-{i}"})  # fmt: skip
            statuses.append(response.status_code)

        threads = [threading.Thread(target=send, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    assert statuses == [201] * 4, statuses
    assert state["most"] == 1, state
