"""API keys: 401 without a valid key, other owners' things are 404, keys are stored hashed, the CLI prints one."""

from __future__ import annotations

import subprocess
import sys

from fastapi.testclient import TestClient
from sqlalchemy import select

from app.security import authenticate
from core.db.orm import ApiKey
from core.db.session import Database
from service.helpers import REPO_ROOT, subprocess_env


def test_health_needs_no_key(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["database"] == "ok"
    assert "/datasets" in client.get("/openapi.json").json()["paths"]


def test_missing_malformed_or_wrong_key_is_401(client: TestClient, alice: dict[str, str]) -> None:
    token = alice["Authorization"].removeprefix("Bearer ")
    key_id = token.split("_")[1]
    for headers in (
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer not-a-key"},
        {"Authorization": f"Bearer gmx_{key_id}_wrong-secret"},
        {"Authorization": "Bearer gmx_0000000000000000_whatever"},
    ):
        for method, path in (("GET", "/datasets"), ("GET", "/jobs"), ("GET", "/samples"), ("POST", "/jobs"),
                             ("GET", "/samples/1"), ("GET", "/jobs/x/artifacts"), ("POST", "/datasets")):  # fmt: skip
            response = client.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.headers["www-authenticate"] == "Bearer"


def test_keys_are_stored_hashed(db: Database, alice: dict[str, str]) -> None:
    token = alice["Authorization"].removeprefix("Bearer ")
    with db.session() as session:
        principal = authenticate(session, token)
        assert principal is not None
        row = session.get(ApiKey, principal.key_id)
        assert row is not None and token.split("_", 2)[2] not in row.secret_sha256
        assert all(token not in str(value) for value in session.execute(select(ApiKey.__table__)).all())


def test_other_owner_sees_404(client: TestClient, alice: dict[str, str], bob: dict[str, str],
                              dataset: dict) -> None:  # fmt: skip
    assert client.get(f"/datasets/{dataset['id']}", headers=alice).status_code == 200
    assert client.get(f"/datasets/{dataset['id']}", headers=bob).status_code == 404
    assert client.delete(f"/datasets/{dataset['id']}", headers=bob).status_code == 404
    assert dataset["id"] not in [d["id"] for d in client.get("/datasets", headers=bob).json()["data"]]
    job = client.post("/jobs", headers=bob, json={"dataset_id": dataset["id"], "queue": "gpu"})
    assert job.status_code == 404, job.text


def test_cli_prints_the_key_alone(service_env: dict[str, str], client: TestClient) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "apikey", "create", "--name", "carol"],
        env=subprocess_env(service_env), cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    lines = out.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gmx_")
    response = client.get("/datasets", headers={"Authorization": f"Bearer {lines[0]}"})
    assert response.status_code == 200 and response.json() == {"data": [], "count": 0}
    listed = subprocess.run(
        [sys.executable, "-m", "cli.main", "apikey", "list"],
        env=subprocess_env(service_env), cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    assert "carol" in listed and lines[0].split("_", 2)[2] not in listed
