"""Issue 11, item 7: links never echo an untrusted ``Host``; revoking a key closes its open event streams; another
owner's sample and a missing one take the same path; ``api_keys.last_used_at`` is written."""

from __future__ import annotations

import io
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import event, select

from app.main import create_app
from app.security import create_api_key, revoke_api_key
from core.db.orm import ApiKey, Job, Sample
from core.db.session import Database
from core.settings import Settings
from core.storage import ArtifactStore
from service.helpers import quick_job


@pytest.fixture(scope="module")
def api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def _queued_job(client: TestClient, headers: dict[str, str], dataset_id: str) -> dict[str, Any]:
    """A job on the gpu queue, which no test worker serves: it stays queued until cancelled."""
    response = client.post("/jobs", headers=headers, json=quick_job(dataset_id, queue="gpu"))
    assert response.status_code == 202, response.text
    return response.json()


def test_links_never_echo_an_untrusted_host(api: TestClient, settings: Settings, alice: dict[str, str],
                                            dataset: dict[str, Any]) -> None:  # fmt: skip
    job = _queued_job(api, alice, dataset["id"])
    try:
        response = api.get(f"/jobs/{job['id']}", headers={**alice, "Host": "evil.example"})
        assert response.status_code == 400 and "evil.example" not in response.text, response.text[:300]
        assert api.get("/healthz", headers={"Host": "10.0.0.7:8000"}).status_code == 200  # probes need no name
        response = api.get(f"/jobs/{job['id']}", headers={**alice, "Host": "localhost:8000"})
        assert response.json()["links"]["self"] == f"http://localhost:8000/jobs/{job['id']}"
        public = settings.model_copy(update={"public_url": "https://genmix.lab.example/", "allowed_hosts": ["*"]})
        with TestClient(create_app(public)) as behind_a_proxy:
            body = behind_a_proxy.get(f"/jobs/{job['id']}", headers={**alice, "Host": "evil.example"}).json()
        assert body["links"]["self"] == f"https://genmix.lab.example/jobs/{job['id']}"
    finally:
        api.post(f"/jobs/{job['id']}/cancel", headers=alice)


def test_revoking_a_key_closes_its_open_event_streams(api: TestClient, db: Database, alice: dict[str, str],
                                                      dataset: dict[str, Any]) -> None:  # fmt: skip
    owner = alice["Authorization"]
    with db.session() as session:  # a second key of alice's owner, to revoke
        principal_owner = session.scalars(select(ApiKey.owner).where(
            ApiKey.id == owner.removeprefix("Bearer ").split("_")[1])).one()  # fmt: skip
        token = create_api_key(session, name=f"revoke-me-{uuid.uuid4().hex[:6]}", owner=principal_owner)
    headers = {"Authorization": f"Bearer {token}"}
    job = _queued_job(api, headers, dataset["id"])
    body: list[str] = []

    def follow() -> None:
        with api.stream("GET", f"/jobs/{job['id']}/events", headers=headers) as response:
            assert response.status_code == 200
            for text in response.iter_text():
                body.append(text)

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    deadline = time.monotonic() + 10
    while not any("event: progress" in part for part in body) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert reader.is_alive(), "".join(body)
    with db.session() as session:
        assert revoke_api_key(session, key_id=token.split("_")[1])
    revoked_at = time.monotonic()
    reader.join(10)
    closed = not reader.is_alive()
    api.post(f"/jobs/{job['id']}/cancel", headers=alice)  # ends the stream either way
    reader.join(10)
    assert closed, "the stream of a revoked key stayed open"
    assert time.monotonic() - revoked_at < 10
    assert "event: end" in "".join(body)


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8), 7, np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def alices_sample(db: Database, settings: Settings, api: TestClient, alice: dict[str, str],
                  dataset: dict[str, Any]) -> int:  # fmt: skip
    """A sample row of one of alice's jobs, with its PNG on disk (written here, not by a worker)."""
    job = _queued_job(api, alice, dataset["id"])
    api.post(f"/jobs/{job['id']}/cancel", headers=alice)
    store = ArtifactStore(settings.artifacts)
    target = store.job_dir(job["id"]) / "samples" / "real-0.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(_png())
    with db.session() as session:
        assert session.get(Job, job["id"]) is not None
        sample = Sample(job_id=job["id"], kind="real", source_key="real:0", label=0, source_index=0, width=8,
                        height=8, path=store.relative(target))  # fmt: skip
        session.add(sample)
        session.commit()
        return sample.id


def test_another_owners_sample_and_a_missing_one_take_the_same_path(
    api: TestClient, alice: dict[str, str], bob: dict[str, str], alices_sample: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = api.app.state.services
    assert api.get("/datasets", headers=bob).status_code == 200  # bob's key is checked (and cached) first
    statements: list[str] = []
    reads: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    real_resolve = services.store.resolve

    def resolve(stored: str) -> Any:
        reads.append(stored)
        return real_resolve(stored)

    monkeypatch.setattr(services.store, "resolve", resolve)
    event.listen(services.db.engine, "before_cursor_execute", record)
    try:
        assert api.get(f"/samples/{alices_sample}", headers=alice).status_code == 200  # now in alice's cache
        paths = {}
        for name, sample_id in (("another owner's", alices_sample), ("missing", 2**31 - 1)):
            for attempt in range(2):
                statements.clear()
                reads.clear()
                response = api.get(f"/samples/{sample_id}", headers=bob)
                assert response.status_code == 404 and response.json() == {"detail": "sample not found"}
                paths[(name, attempt)] = (list(statements), list(reads))
    finally:
        event.remove(services.db.engine, "before_cursor_execute", record)
    assert len(set(map(repr, paths.values()))) == 1, paths
    assert paths[("missing", 0)][1] == [], "a 404 never reads a file"


def test_last_used_at_is_written(api: TestClient, db: Database) -> None:
    with db.session() as session:
        token = create_api_key(session, name=f"fresh-{uuid.uuid4().hex[:6]}")
    key_id = token.split("_")[1]
    assert api.get("/datasets", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    with db.session() as session:
        assert session.get(ApiKey, key_id).last_used_at is not None
