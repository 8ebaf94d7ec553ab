"""Faults while jobs run: PostgreSQL restarted or down, Redis restarted (no persistence) or down, a worker killed
while another stays up. Each test here talks to this module's own PostgreSQL and Redis
(:mod:`support.servers`: own ports, own data directories), which it stops and starts mid-job; the shared
servers are never touched.

Workers: ``a`` serves ``cpu`` and retries database writes for a minute; ``b`` serves ``gpu`` and gives up on the
database after 2 s, so its jobs lose their bookkeeping in an outage of a few seconds. Both sweep for orphaned
and lost jobs every 2 s.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select
from support.servers import PrivatePostgres, PrivateRedis

from app.main import create_app
from app.security import create_api_key
from core.db import migrate
from core.db.orm import Job, JobEvent
from core.db.session import Database
from core.queue import message_job_id
from core.settings import Settings
from service.helpers import (
    WorkerProcess,
    api_key_headers,
    quick_job,
    service_env_for,
    settings_from_env,
    subprocess_env,
    upload_breast_slice,
    wait_for,
    wait_for_status,
)
from workers.liveness import pid_alive

TERMINAL = {"succeeded", "failed", "cancelled"}
SWEEP_INTERVAL = 2.0
REQUEUE_QUEUED_AFTER = 3.0
ORPHAN_BOUND = 20.0
"""Seconds from a worker's death (or a lost message) to its job being published again, with slack for a slow
machine: the sweep runs every ``SWEEP_INTERVAL`` s."""


def _dcgan(iterations: int) -> dict[str, Any]:
    return {"dcgan": {"iterations": iterations, "batch_size": 16, "ngf": 8, "ndf": 8, "log_every": 10,
                      "checkpoint_every": 50}}  # fmt: skip


@pytest.fixture(scope="module")
def pg() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres().init()
    migrate.upgrade(server.url)
    yield server
    server.remove()


@pytest.fixture(scope="module")
def broker() -> Iterator[PrivateRedis]:
    server = PrivateRedis().start()
    yield server
    server.remove()


@pytest.fixture(scope="module")
def fault_env(tmp_path_factory: pytest.TempPathFactory, pg: PrivatePostgres, broker: PrivateRedis,
              data_dir: Path) -> dict[str, str]:  # fmt: skip
    state = tmp_path_factory.mktemp("faults-state")
    return service_env_for(
        state, pg.url, broker.url, data_dir, heartbeat_interval="1", stale_after="10",
        sweep_interval=str(SWEEP_INTERVAL), requeue_queued_after=str(REQUEUE_QUEUED_AFTER),
        db_retry_seconds="60", db_final_retry_seconds="120",
    )  # fmt: skip


@pytest.fixture(scope="module")
def fault_settings(fault_env: dict[str, str]) -> Settings:
    return settings_from_env(fault_env)


@pytest.fixture(scope="module")
def fault_db(fault_settings: Settings) -> Iterator[Database]:
    database = Database(fault_settings.database_url)
    yield database
    database.dispose()


@pytest.fixture(scope="module")
def api(fault_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(fault_settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def lab(fault_db: Database) -> dict[str, str]:
    return api_key_headers(fault_db, "faults")


@pytest.fixture(scope="module")
def slice_id(api: TestClient, lab: dict[str, str], data_dir: Path) -> str:
    return upload_breast_slice(api, lab, data_dir)["id"]


class Workers:
    """The module's worker processes by name; a test may add one (``start``) or kill one."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.env = env
        self.folder = folder
        self.procs: dict[str, WorkerProcess] = {}

    def start(self, name: str, queues: str, wait: bool = True, **env: str) -> WorkerProcess:
        process = WorkerProcess(subprocess_env({**self.env, **env}), self.folder / f"{name}.log", queues=queues)
        process.start(wait=wait)
        self.procs[name] = process
        return process

    def holding(self, pid: int) -> str:
        """The name of the worker whose process group ``pid`` belongs to."""
        group = os.getpgid(pid)
        for name, process in self.procs.items():
            if process.process is not None and process.process.pid == group:
                return name
        raise AssertionError(f"pid {pid} belongs to no worker of this module")

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{p.log()[-3000:]}" for name, p in self.procs.items())

    def stop(self) -> None:
        for process in self.procs.values():
            process.stop()


@pytest.fixture(scope="module")
def workers(fault_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory,
            slice_id: str) -> Iterator[Workers]:  # fmt: skip
    group = Workers(fault_env, tmp_path_factory.mktemp("fault-workers"))
    try:
        group.start("a", "cpu", wait=False)
        group.start("b", "gpu", wait=False, GENMIX_DB_RETRY_SECONDS="2", GENMIX_DB_FINAL_RETRY_SECONDS="2")
        for process in group.procs.values():
            process.wait_ready()
        yield group
    finally:
        group.stop()


def _job_row(db: Database, job_id: str) -> Job | None:
    try:
        with db.session() as session:
            return session.get(Job, job_id)
    except Exception:  # the database may be down or restarting right now
        return None


def _events(db: Database, job_id: str) -> list[JobEvent]:
    with db.session() as session:
        return list(session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)))


def _launch(api: TestClient, lab: dict[str, str], spec: dict[str, Any]) -> str:
    response = api.post("/jobs", headers=lab, json=spec)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def _wait_training(db: Database, job_id: str, timeout: float = 120, past: int = 0) -> Job:
    """Wait until the job is running and has reported a training step (beyond ``past``) of its first stage."""

    def training() -> Job | None:
        job = _job_row(db, job_id)
        return job if job is not None and job.status == "running" and (job.step or 0) > past else None

    return wait_for(training, timeout, 0.1, f"job {job_id} to be training")


# ------------------------------------------------------------------------------------------------ item 12


def test_a_database_outage_answers_503_with_retry_after(api: TestClient, lab: dict[str, str], slice_id: str,
                                                        pg: PrivatePostgres, fault_db: Database) -> None:  # fmt: skip
    assert api.get("/jobs", headers=lab).status_code == 200  # the key is cached from here on
    with fault_db.session() as session:
        unused = {"Authorization": f"Bearer {create_api_key(session, name='never-seen')}"}
    pg.stop()
    try:
        for method, path, headers in (
            ("GET", "/jobs", lab),
            ("GET", "/datasets", lab),
            ("GET", f"/datasets/{slice_id}", lab),
            ("GET", f"/jobs/{uuid.uuid4()}", lab),
            ("POST", "/jobs", lab),
            ("GET", "/jobs", unused),  # the key check itself needs the database: 503, not 401 or 500
        ):
            body = quick_job(slice_id) if method == "POST" else None
            response = api.request(method, path, headers=headers, json=body)
            assert response.status_code == 503, (method, path, response.status_code, response.text)
            assert response.headers["content-type"].startswith("application/json"), response.text
            assert "database" in response.json()["detail"]
            assert int(response.headers["retry-after"]) > 0
        health = api.get("/healthz")
        assert health.status_code == 503 and health.json()["database"] == "unreachable"
    finally:
        pg.start()
    assert api.get("/jobs", headers=unused).status_code == 200


# ------------------------------------------------------------------------------------------------ item 11


def test_post_jobs_during_a_redis_outage_queues_the_job_and_it_runs_later(
    api: TestClient, lab: dict[str, str], slice_id: str, broker: PrivateRedis, workers: Workers
) -> None:
    broker.stop()
    try:
        started = time.monotonic()
        response = api.post("/jobs", headers=lab, json=quick_job(slice_id))
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "queued"
        assert time.monotonic() - started < 15
    finally:
        broker.start()
    final = wait_for_status(api, lab, response.json()["id"], TERMINAL, 180, workers.procs["a"])
    assert final["status"] == "succeeded", final["error"]


def test_queued_jobs_survive_a_redis_restart(api: TestClient, lab: dict[str, str], slice_id: str,
                                            broker: PrivateRedis, fault_db: Database, fault_settings: Settings,
                                            workers: Workers) -> None:  # fmt: skip
    busy = _launch(api, lab, quick_job(slice_id, generator_settings=_dcgan(400)))
    _wait_training(fault_db, busy)
    behind = _launch(api, lab, quick_job(slice_id))  # worker a runs one job at a time: this one waits in Redis
    client = redis.Redis.from_url(fault_settings.broker_url)
    # the one job message is the waiting job's (the busy job's unit messages wait beside it: worker a is busy)
    waiting = [message_job_id(message) for message in client.lrange("cpu", 0, -1)]
    assert [job for job in waiting if job is not None] == [behind]
    broker.restart()  # no persistence: the queued message is gone
    assert client.llen("cpu") == 0
    client.close()
    first = wait_for_status(api, lab, busy, TERMINAL, 180, workers.procs["a"])
    assert first["status"] == "succeeded", first["error"]  # the running job went on through the restart
    second = wait_for_status(api, lab, behind, TERMINAL, 180, workers.procs["a"])
    assert second["status"] == "succeeded", second["error"]
    assert "requeued" in [e.kind for e in _events(fault_db, behind)]


# ------------------------------------------------------------------------------------------------ item 9


def test_a_job_survives_a_postgres_restart_and_a_short_outage(api: TestClient, lab: dict[str, str], slice_id: str,
                                                             pg: PrivatePostgres, fault_db: Database,
                                                             workers: Workers) -> None:  # fmt: skip
    job_id = _launch(api, lab, quick_job(slice_id, generator_settings=_dcgan(600)))
    _wait_training(fault_db, job_id)
    pg.restart(down_for=0.5)
    time.sleep(1.0)
    pg.stop()
    time.sleep(10.0)  # an outage while training goes on: progress is not written, stage writes wait
    pg.start()
    final = wait_for_status(api, lab, job_id, TERMINAL, 240, workers.procs["a"])
    assert final["status"] == "succeeded", (final["error"], workers.logs())
    assert final["attempts"] == 1  # it never stopped: no redelivery was needed
    assert len(final["results"]["runs"]) == 2


def test_a_job_whose_bookkeeping_fails_is_not_left_running(api: TestClient, lab: dict[str, str], slice_id: str,
                                                          pg: PrivatePostgres, fault_db: Database,
                                                          workers: Workers) -> None:  # fmt: skip
    """Worker b gives up on the database after 2 s: the job cannot record its next stage or its end, its worker
    process exits, and once the database is back the sweep re-queues it (its pid is dead) and it resumes."""
    job_id = _launch(api, lab, quick_job(slice_id, queue="gpu", generator_settings=_dcgan(300)))
    pid = _wait_training(fault_db, job_id).worker_pid
    pg.stop()
    try:  # down until the job's next stage or final write has given up and its process has exited
        wait_for(lambda: not pid_alive(pid), 240, 0.5, "the job's worker process to give up and exit")
    finally:
        pg.start()
    final = wait_for_status(api, lab, job_id, TERMINAL, 240, workers.procs["b"])
    assert final["status"] == "succeeded", (final["error"], workers.logs())
    assert final["attempts"] == 2
    assert "requeued" in [e.kind for e in _events(fault_db, job_id)]


def test_a_gpu_only_worker_warns_that_auto_jobs_go_to_the_cpu_queue(workers: Workers) -> None:
    """New-user list: `device: auto` jobs go to GENMIX_DEFAULT_QUEUE (cpu); a GPU-only deployment must say so."""
    assert "GENMIX_DEFAULT_QUEUE" in workers.procs["b"].log()
    assert "GENMIX_DEFAULT_QUEUE" not in workers.procs["a"].log()


# ------------------------------------------------------------------------------------------------ item 10


def test_a_killed_workers_job_is_taken_over_by_a_live_worker(api: TestClient, lab: dict[str, str], slice_id: str,
                                                            fault_db: Database, workers: Workers) -> None:  # fmt: skip
    workers.start("c", "gpu")  # now b and c both serve gpu
    job_id = _launch(api, lab, quick_job(slice_id, queue="gpu", generator_settings=_dcgan(600)))
    job = _wait_training(fault_db, job_id, past=60)  # past its first checkpoint (every 50 steps)
    victim = workers.holding(job.worker_pid)
    os.killpg(workers.procs[victim].process.pid, signal.SIGKILL)  # the whole worker: parent and child
    killed = time.monotonic()

    def requeued() -> bool:
        return "requeued" in [e.kind for e in _events(fault_db, job_id)]

    wait_for(requeued, ORPHAN_BOUND, 0.25, "the live worker to re-queue the orphaned job")
    assert time.monotonic() - killed <= ORPHAN_BOUND
    final = wait_for_status(api, lab, job_id, TERMINAL, 240)
    assert final["status"] == "succeeded", (final["error"], workers.logs())
    assert final["attempts"] == 2
    events = _events(fault_db, job_id)
    resumed = [e.data for e in events if e.kind == "resumed"]
    assert resumed and all(data["step"] >= 50 for data in resumed), resumed  # only stages that really resumed
