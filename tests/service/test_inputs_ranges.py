"""Issue 11, item 2: values the API used to pass unchecked to PostgreSQL, numpy or the JSON encoder answer 4xx.

Ids, labels and offsets beyond the database's integer ranges, NUL bytes in path ids, query values and JSON
strings, ``NaN`` / ``Infinity`` / ``1e400`` in a job spec, an ``.npy`` header that declares 10¹² bytes, and a
``Last-Event-ID`` beyond every event id: each is a 4xx that says what is wrong, never a 500 (nor a stream
that breaks after its 200).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from core.settings import Settings
from service.helpers import quick_job

INT32 = 2**31
INT64 = 2**63


@pytest.fixture(scope="module")
def api(settings: Settings) -> Iterator[TestClient]:
    """A client that shows a server error as a 500 response instead of raising it."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def queued_job(api: TestClient, alice: dict[str, str], dataset: dict[str, Any]) -> str:
    """One of alice's jobs, cancelled at once so that no worker spends time on it."""
    response = api.post("/jobs", headers=alice, json=quick_job(dataset["id"], queue="gpu"))
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    api.post(f"/jobs/{job_id}/cancel", headers=alice)
    return job_id


def _client_error(response: Any) -> None:
    assert 400 <= response.status_code < 500, (response.request.url, response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json")
    assert isinstance(response.json()["detail"], str | list)


def test_integers_beyond_the_database_ranges(api: TestClient, alice: dict[str, str], queued_job: str) -> None:
    for path in (f"/samples/{INT32}", f"/samples/{INT64}", f"/samples/{10**20}", "/samples/-1",
                 f"/jobs/{queued_job}/artifacts/{INT32}", f"/jobs/{queued_job}/artifacts/{10**20}"):  # fmt: skip
        response = api.get(path, headers=alice)
        assert response.status_code in (404, 422), (path, response.status_code, response.text[:300])
    for path, params in (
        ("/samples", {"label": INT32}),
        ("/samples", {"label": 10**20}),
        ("/samples", {"offset": INT64}),
        ("/datasets", {"offset": INT64}),
        ("/jobs", {"offset": INT64}),
        (f"/jobs/{queued_job}/artifacts", {"offset": INT64}),
    ):
        _client_error(api.get(path, headers=alice, params=params))


def test_nul_bytes_in_ids_queries_and_json(api: TestClient, alice: dict[str, str], dataset: dict[str, Any],
                                           queued_job: str) -> None:  # fmt: skip
    for path in ("/jobs/a%00b", "/datasets/a%00b", "/jobs/a%00b/events", "/jobs/a%00b/artifacts", "/jobs/a%00b/cancel",
                 f"/jobs/{queued_job}/artifacts?kind=a%00b", "/samples?job_id=a%00b"):  # fmt: skip
        method = "POST" if path.endswith("/cancel") else "GET"
        _client_error(api.request(method, path, headers=alice))
    assert api.delete("/datasets/a%00b", headers=alice).status_code in (400, 404, 422)
    for change in ({"dataset_id": "a\x00b"}, {"generator_settings": {"dcgan": {"loss": "bce\x00"}}},
                   {"classifier_settings": {"weights": "x\x00y"}}):  # fmt: skip
        _client_error(api.post("/jobs", headers=alice, json={**quick_job(dataset["id"]), **change}))
    _client_error(api.post("/jobs", headers={**alice, "Idempotency-Key": "k%00"}, json={"dataset_id": "\x00"}))


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_in_a_job_spec(number: str, api: TestClient, alice: dict[str, str],
                                          dataset: dict[str, Any]) -> None:  # fmt: skip
    for field in ('"alpha"', '"classifier_settings": {"lr"'):
        closing = "}" if "{" in field else ""
        body = f'{{"dataset_id": "{dataset["id"]}", {field}: {number}{closing}}}'
        response = api.post("/jobs", headers={**alice, "Content-Type": "application/json"}, content=body)
        assert response.status_code == 422, (body, response.status_code, response.text[:300])
        assert number.lstrip("-") in response.text or "finite" in response.text


def _npy_member(header_shape: tuple[int, ...]) -> bytes:
    """A .npy whose header declares ``header_shape`` uint8 values but which holds only a few bytes."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "|u1", "fortran_order": False, "shape": header_shape})
    return buffer.getvalue() + b"\0" * 64


def test_npy_header_declaring_a_terabyte(api: TestClient, alice: dict[str, str]) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("train_images.npy", _npy_member((1_000_000, 1000, 1000)))
        zf.writestr("train_labels.npy", _npy_member((1_000_000,)))
    response = api.post("/datasets", headers=alice, files={"file": ("big.npz", archive.getvalue())})
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert "train_images" in response.json()["detail"]


def test_last_event_id_beyond_every_event(api: TestClient, alice: dict[str, str], queued_job: str) -> None:
    for value in ("99999999999999999999", str(INT64), str(INT32), "-1", "abc"):
        headers = {**alice, "Last-Event-ID": value}
        with api.stream("GET", f"/jobs/{queued_job}/events", params={"follow": False}, headers=headers) as response:
            body = response.read().decode()
        if response.status_code == 200:  # a stream that starts must end properly
            assert "event: end" in body, (value, body[-300:])
        else:
            assert 400 <= response.status_code < 500, (value, response.status_code, body[:300])
