"""Helpers shared by the service tests (imported as ``service.helpers``; fixtures live in conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from fastapi.testclient import TestClient
from support.data import breast_slice
from support.processes import REPO_ROOT, clean_env, stop_process

from app.security import create_api_key
from core.db.session import Database
from core.settings import Settings

PG_SERVER = os.environ.get("GENMIX_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("GENMIX_TEST_REDIS", "redis://127.0.0.1:6379/13")
WORKER_READY_TIMEOUT = 180


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.25, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _admin() -> psycopg.Connection:
    try:
        return psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {PG_SERVER} ({exc}). The service tests need it: start it with "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` (.ci/run does)."
        )


def create_database() -> str:
    """A new empty database; returns its SQLAlchemy URL."""
    name = f"genmix_test_{uuid.uuid4().hex[:12]}"
    with _admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{PG_SERVER.replace('postgresql://', 'postgresql+psycopg://')}/{name}"


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with _admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def subprocess_env(service_env: dict[str, str]) -> dict[str, str]:
    return clean_env(service_env)


def service_env_for(
    state: Path, database_url: str, broker_url: str, data_dir: Path, **overrides: str
) -> dict[str, str]:
    """The ``GENMIX_`` environment a test module's service processes share, with fast progress, cancel and
    heartbeat intervals; ``overrides``: more settings by field name (``stale_after="6"``)."""
    fields = {
        "database_url": database_url,
        "broker_url": broker_url,
        "state_dir": str(state),
        "artifact_root": str(state / "artifacts"),
        "data_dir": str(data_dir),
        "progress_interval": "0.2",
        "cancel_poll_interval": "0.5",
        "heartbeat_interval": "2",
        "torch_threads": "1",
        **overrides,
    }
    return {f"GENMIX_{name.upper()}": value for name, value in fields.items()}


@contextmanager
def private_service_env(state: Path, data_dir: Path, **overrides: str) -> Iterator[dict[str, str]]:
    """A fresh migrated database and Redis key prefix on the shared servers, for a test module whose workers must
    not meet the session's; yields :func:`service_env_for` pointing at them and removes both afterwards."""
    from core.db import migrate

    url = create_database()
    migrate.upgrade(url)
    prefix = f"genmix_test_{uuid.uuid4().hex[:12]}:"
    try:
        yield service_env_for(state, url, REDIS_URL, data_dir, redis_key_prefix=prefix, **overrides)
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()
        drop_database(url)


def settings_from_env(env: dict[str, str]) -> Settings:
    """The in-process settings of the API under test: the same values its worker subprocesses read."""
    return Settings(**{key.removeprefix("GENMIX_").lower(): value for key, value in env.items()})


def api_key_headers(db: Database, name: str) -> dict[str, str]:
    """Headers carrying a new API key of owner ``name``."""
    with db.session() as session:
        return {"Authorization": f"Bearer {create_api_key(session, name=name)}"}


def upload_breast_slice(client: TestClient, headers: dict[str, str], data_dir: Path) -> dict[str, Any]:
    """Upload the service tests' BreastMNIST slice as "breast-slice"; returns the dataset's JSON."""
    response = client.post(
        "/datasets", headers=headers, files={"file": ("breast.npz", breast_slice(data_dir))},
        data={"name": "breast-slice", "class_names": "malignant,normal_or_benign"},
    )  # fmt: skip
    assert response.status_code == 201, response.text
    return response.json()


class WorkerProcess:
    """A real ``genmix worker --queues cpu`` (or ``queues``) subprocess in its own session, logging to a file."""

    def __init__(self, env: dict[str, str], log_path: Path, queues: str = "cpu") -> None:
        self.env = env
        self.log_path = log_path
        self.queues = queues
        self.process: subprocess.Popen[bytes] | None = None
        self._offset = 0

    def start(self, wait: bool = True) -> None:
        """Start the worker; with ``wait`` (else call :meth:`wait_ready`) return once Celery says it is ready."""
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "worker", "--queues", self.queues],
                env=self.env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"the worker exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            with self.log_path.open("rb") as fh:
                fh.seek(self._offset)
                return b" ready." in fh.read()

        wait_for(ready, WORKER_READY_TIMEOUT, 0.5, "the Celery worker to be ready")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout=30)


def quick_job(dataset_id: str, **overrides: Any) -> dict[str, Any]:
    """A job spec that runs in seconds: profile quick with tiny DCGAN and classifier settings."""
    spec: dict[str, Any] = {
        "dataset_id": dataset_id,
        "generators": ["dcgan"],
        "arms": ["baseline", "genmix"],
        "profile": "quick",
        "seeds": [0],
        "classifier": "smallcnn",
        "classifier_settings": {"epochs": 2, "batch_size": 32},
        "generator_settings": {"dcgan": {"iterations": 40, "batch_size": 16, "ngf": 8, "ndf": 8, "log_every": 10}},
        "samples_per_class": 3,
        "figures": False,
    }
    spec.update(overrides)
    return spec


def job_state(client: TestClient, headers: dict[str, str], job_id: str) -> dict[str, Any]:
    response = client.get(f"/jobs/{job_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def wait_for_status(client: TestClient, headers: dict[str, str], job_id: str, statuses: set[str],
                    timeout: float, worker: WorkerProcess | None = None) -> dict[str, Any]:  # fmt: skip
    """Poll a job until its status is one of ``statuses``; the worker's log is shown on failure."""
    last: dict[str, Any] = {}

    def reached() -> bool:
        last.update(job_state(client, headers, job_id))
        return last["status"] in statuses

    deadline = time.monotonic() + timeout
    while not reached():
        if time.monotonic() > deadline:
            log = worker.log()[-4000:] if worker else ""
            pytest.fail(f"job {job_id} is {last.get('status')} (error {last.get('error')}) after {timeout} s\n{log}")
        time.sleep(0.3)
    return last


def sse(client: TestClient, headers: dict[str, str], job_id: str, follow: bool = True) -> list[tuple[str, dict]]:
    """All (event, data) pairs of a job's event stream."""

    with client.stream("GET", f"/jobs/{job_id}/events", params={"follow": follow}, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        body = response.read().decode()
    events = []
    for block in body.split("\n\n"):
        kind, data = None, None
        for line in block.splitlines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
        if kind is not None and data is not None:
            events.append((kind, data))
    return events
