"""Service test fixtures: a fresh PostgreSQL database, a private Redis key prefix, a real Celery worker process.

PostgreSQL (127.0.0.1:5432, user postgres, trust auth) and Redis (127.0.0.1:6379) must be running; `.ci/run`
starts them. Override with GENMIX_TEST_PG (libpq URL of the server) and GENMIX_TEST_REDIS.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from support.data import breast_slice

from app.main import create_app
from core.db import migrate
from core.db.session import Database
from core.settings import Settings
from service.helpers import (
    REDIS_URL,
    WorkerProcess,
    api_key_headers,
    create_database,
    drop_database,
    service_env_for,
    settings_from_env,
    subprocess_env,
    upload_breast_slice,
)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    url = create_database()
    try:
        migrate.upgrade(url)
        yield url
    finally:
        drop_database(url)


@pytest.fixture(scope="session")
def redis_prefix() -> Iterator[str]:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(
            f"Redis is not reachable at {REDIS_URL} ({exc}). The service tests need it: start it with "
            "`redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no` (.ci/run does)."
        )
    prefix = f"genmix_test_{uuid.uuid4().hex[:12]}:"
    try:
        yield prefix
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture(scope="session")
def service_env(tmp_path_factory: pytest.TempPathFactory, database_url: str, redis_prefix: str,
                data_dir: Path) -> dict[str, str]:  # fmt: skip
    """Environment of every service process in the session (the worker and CLI subprocesses)."""
    state = tmp_path_factory.mktemp("genmix-state")
    return service_env_for(state, database_url, REDIS_URL, data_dir, redis_key_prefix=redis_prefix)


@pytest.fixture(scope="session")
def settings(service_env: dict[str, str]) -> Settings:
    return settings_from_env(service_env)


@pytest.fixture(scope="session")
def worker(service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    process = WorkerProcess(subprocess_env(service_env), tmp_path_factory.mktemp("worker") / "worker.log")
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings.database_url)
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def alice(db: Database) -> dict[str, str]:
    """Headers for the owner "alice"."""
    return api_key_headers(db, f"alice-{uuid.uuid4().hex[:6]}")


@pytest.fixture(scope="session")
def bob(db: Database) -> dict[str, str]:
    """Headers for another owner."""
    return api_key_headers(db, f"bob-{uuid.uuid4().hex[:6]}")


@pytest.fixture(scope="session")
def slice_bytes(data_dir: Path) -> bytes:
    return breast_slice(data_dir)


@pytest.fixture(scope="session")
def dataset(client: TestClient, alice: dict[str, str], data_dir: Path) -> dict[str, Any]:
    """The BreastMNIST slice uploaded by alice."""
    return upload_breast_slice(client, alice, data_dir)
