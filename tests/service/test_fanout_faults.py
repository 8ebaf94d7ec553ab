"""The job fan-out's fault paths, in process, on a real PostgreSQL and Redis (no worker consumes here: the module
has its own database and Redis key prefix, and each test drives a delivery or a unit itself):

* a coordinator's own unit that loses the database ends the delivery as a lost one (it never loops for ever
  on a unit left ``running`` under its own live pid);
* a coordinator whose job another delivery took over stops at once and leaves the new delivery's units and
  their messages alone;
* a unit whose runner cannot even be built is ``failed``, not left ``running``;
* a claim and a cancel are serialised on the job row;
* a finished job shows no hosts and no ETA.

Database blips are real: the connection's own backend is terminated (``pg_terminate_backend``) just before
the statement that should fail.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import redis
import torch
from fastapi.testclient import TestClient
from sqlalchemy import event, select, update

from app.main import create_app
from core.crud import lifecycle
from core.crud import units as unit_crud
from core.db.base import utcnow
from core.db.orm import Job, JobUnit
from core.db.session import Database
from core.jobstate import JobStatus
from core.settings import Settings
from models.units import plan_units
from service.helpers import (
    REDIS_URL,
    api_key_headers,
    job_state,
    private_service_env,
    quick_job,
    settings_from_env,
    upload_breast_slice,
    wait_for,
)
from workers import delivery
from workers.liveness import owner_alive, unit_alive
from workers.units import experiment_spec, load_context, run_unit, this_host

OTHER_HOST = "genmix-other-host"
LONG = {"dcgan": {"iterations": 1_000_000, "batch_size": 16, "ngf": 8, "ndf": 8, "log_every": 5}}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[dict[str, str]]:
    state = tmp_path_factory.mktemp("fanout-faults")
    with private_service_env(state, data_dir, cancel_poll_interval="0.2", heartbeat_interval="0.5",
                             stale_after="300", db_retry_seconds="2", db_final_retry_seconds="1") as env:  # fmt: skip
        yield env


@pytest.fixture(scope="module")
def conf(env: dict[str, str]) -> Settings:
    return settings_from_env(env)


@pytest.fixture(scope="module")
def fdb(conf: Settings) -> Iterator[Database]:
    database = Database(conf.database_url)
    yield database
    database.dispose()


@pytest.fixture(scope="module")
def api(conf: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(conf)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def owner(fdb: Database) -> dict[str, str]:
    return api_key_headers(fdb, "fanout-faults")


@pytest.fixture(scope="module")
def data(api: TestClient, owner: dict[str, str], data_dir: Path) -> dict[str, Any]:
    return upload_breast_slice(api, owner, data_dir)


def _post(api: TestClient, owner: dict[str, str], data: dict[str, Any], **spec: Any) -> str:
    response = api.post("/jobs", headers=owner, json=quick_job(data["id"], **spec))
    assert response.status_code == 202, response.text
    return response.json()["id"]


def _units(db: Database, job_id: str) -> dict[str, JobUnit]:
    with db.session() as session:
        rows = unit_crud.units_of(session, job_id)
        session.expunge_all()
    return {row.key: row for row in rows}


class _Delivery(threading.Thread):
    """``workers.delivery`` of one job in this process, on its own engine (so a test can hook its statements)."""

    def __init__(self, conf: Settings, job_id: str) -> None:
        super().__init__(name=f"delivery-{job_id[:8]}", daemon=True)
        self.conf, self.job_id = conf, job_id
        self.db = Database(conf.database_url)
        self.outcome: delivery.Outcome | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.outcome = delivery._execute(self.db, self.job_id, self.conf)
        except BaseException as exc:  # shown by the test
            self.error = exc

    def result(self, timeout: float, what: str) -> delivery.Outcome:
        self.join(timeout)
        assert not self.is_alive(), f"the delivery is still going after {timeout:.0f} s: {what}"
        assert self.error is None, repr(self.error)
        assert self.outcome is not None
        self.db.dispose()
        return self.outcome


def _blip_when(db: Database, matches: Any) -> list[str]:
    """Terminate the connection's backend before every statement ``matches(statement)`` accepts (a real
    dropped connection: the statement fails with the error PostgreSQL gives a client whose backend died)."""
    hits: list[str] = []

    @event.listens_for(db.engine, "before_cursor_execute")
    def blip(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if matches(statement):
            hits.append(statement)
            cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    return hits


def _finish_unit_statement(statement: str) -> bool:
    """``core.crud.units.finish_unit``'s UPDATE (the claim's sets ``worker_pid``, a re-queue no ``finished_at``)."""
    return (statement.startswith("UPDATE job_units SET") and "finished_at=" in statement
            and "eta_seconds=" in statement and "worker_pid=" not in statement)  # fmt: skip


class _Revokes(threading.Thread):
    """The task ids of every ``celery control revoke`` broadcast under the module's Redis key prefix."""

    def __init__(self, prefix: str) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(REDIS_URL)
        self.pubsub = self.client.pubsub()
        self.pubsub.psubscribe(f"{prefix}*pidbox")
        self.ids: set[str] = set()
        self.closing = threading.Event()

    def run(self) -> None:
        while not self.closing.is_set():
            message = self.pubsub.get_message(timeout=0.2)
            if not message or message["type"] != "pmessage":
                continue
            payload = json.loads(message["data"])
            body = payload["body"]
            if (payload.get("properties") or {}).get("body_encoding") == "base64":
                body = base64.b64decode(body)
            request = json.loads(body)
            if request.get("method") == "revoke":
                self.ids.update(request["arguments"]["task_id"])

    def close(self) -> None:
        self.closing.set()
        self.join(5)
        self.pubsub.close()
        self.client.close()


def test_a_blip_as_the_coordinator_starts_its_own_unit_is_retried(
    conf: Settings, fdb: Database, api: TestClient, owner: dict[str, str], data: dict[str, Any]
) -> None:
    """The units count the coordinator reads as it starts a unit of its own is retried like every other
    read: one dropped connection there used to leave the unit ``running`` for ever."""
    job_id = _post(api, owner, data)
    run = _Delivery(conf, job_id)
    fired: list[str] = []

    def first_count(statement: str) -> bool:
        hit = not fired and "count(*)" in statement and "GROUP BY job_units.status" in statement
        if hit:
            fired.append(statement)
        return hit

    _blip_when(run.db, first_count)
    run.start()
    outcome = run.result(240, "its own unit is left running after the blip")
    assert fired, "the coordinator never read the units count"
    assert outcome.status == "succeeded", outcome
    assert job_state(api, owner, job_id)["status"] == "succeeded"


def test_an_own_unit_that_lost_the_database_ends_the_delivery(
    conf: Settings, fdb: Database, api: TestClient, owner: dict[str, str], data: dict[str, Any]
) -> None:
    """A unit of the coordinator's own that could not record how it ended is left ``running`` under the
    coordinator's live pid, which nobody re-queues while that process lives: the delivery ends as lost
    (its process exits, the sweep re-queues the job) instead of waiting for that unit for ever."""
    job_id = _post(api, owner, data)
    run = _Delivery(conf, job_id)
    hits = _blip_when(run.db, _finish_unit_statement)  # every unit's final write fails: the database is away
    run.start()
    outcome = run.result(120, "it waits for ever for its own unit, left running under its live pid")
    assert outcome.status == "lost", outcome
    assert hits
    units = _units(fdb, job_id)
    left = [unit for unit in units.values() if unit.status == unit_crud.RUNNING]
    assert len(left) == 1 and left[0].worker_pid == os.getpid() and left[0].worker_host == this_host()
    with fdb.session() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == "running" and job.error is None  # left to the sweep
    # The pid alone says "alive"; a unit of this very process that it does not run any more is not.
    assert owner_alive(left[0], host=this_host(), stale_after=300)
    assert not unit_alive(left[0], host=this_host(), pid=os.getpid(), stale_after=300)
    assert unit_alive(left[0], host=this_host(), pid=os.getpid(), stale_after=300, running_here=(left[0].key,))
    with fdb.session() as session:
        alive = partial(unit_alive, host=this_host(), pid=os.getpid(), stale_after=300)
        assert unit_crud.requeue_dead(session, job_id=job_id, alive=alive) == [left[0].key]


def test_a_coordinator_whose_job_was_taken_over_stops_and_leaves_the_new_delivery_alone(
    conf: Settings, fdb: Database, api: TestClient, owner: dict[str, str], data: dict[str, Any]
) -> None:  # fmt: skip
    job_id = _post(api, owner, data, generator_settings=LONG)
    revokes = _Revokes(conf.redis_key_prefix)
    revokes.start()
    run = _Delivery(conf, job_id)
    run.start()
    try:

        def own_unit_training() -> JobUnit | None:
            assert run.is_alive(), (run.outcome, run.error)
            return next((u for u in _units(fdb, job_id).values() if u.status == unit_crud.RUNNING
                         and u.worker_pid == os.getpid() and (u.step or 0) > 0), None)  # fmt: skip

        mine = wait_for(own_unit_training, 120, 0.1, "the coordinator training a unit of its own")
        # A new delivery takes the job over (as lifecycle.claim_job does), runs a unit on another host and
        # publishes the queued units again under new message ids.
        now = utcnow()
        with fdb.session() as session:
            job = session.get(Job, job_id)
            assert job is not None
            new_attempt = job.attempts + 1
            session.execute(update(Job).where(Job.id == job_id).values(
                attempts=new_attempt, worker_host=OTHER_HOST, worker_pid=4242, heartbeat_at=now))  # fmt: skip
            queued = [u for u in unit_crud.units_of(session, job_id) if u.status == unit_crud.QUEUED]
            theirs = next(u for u in queued if not u.deps)
            session.execute(update(JobUnit).where(JobUnit.id == theirs.id).values(
                status=unit_crud.RUNNING, attempts=theirs.attempts + 1, worker_host=OTHER_HOST, worker_pid=4242,
                heartbeat_at=now, started_at=now))  # fmt: skip
            new_ids = {}
            for unit in queued:
                if unit.key != theirs.key:
                    new_ids[unit.key] = f"genmix-unit-new-{uuid.uuid4().hex}"
                    session.execute(update(JobUnit).where(JobUnit.id == unit.id).values(
                        enqueued_at=now, message_id=new_ids[unit.key]))  # fmt: skip
            session.commit()
        asked = time.monotonic()
        outcome = run.result(30, "it waits for the new delivery's units as if the job were cancelled")
        assert outcome.status == "stopped" and "took the job over" in outcome.detail, outcome
        assert time.monotonic() - asked < 20
        time.sleep(1.0)  # any revoke it sent has arrived
    finally:
        revokes.close()
    assert not revokes.ids & set(new_ids.values()), "it revoked the new delivery's unit messages"
    with fdb.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert (job.status, job.attempts, job.worker_host, job.error) == ("running", new_attempt, OTHER_HOST, None)
    units = _units(fdb, job_id)
    assert units[theirs.key].status == unit_crud.RUNNING and units[theirs.key].worker_host == OTHER_HOST
    assert units[mine.key].status == unit_crud.QUEUED  # its own unit was given back, for the new delivery
    assert all(units[key].message_id == message_id for key, message_id in new_ids.items())
    with fdb.session() as session:  # end the job for the module's other tests
        session.execute(update(Job).where(Job.id == job_id).values(status="cancelled", finished_at=utcnow()))
        session.commit()


@pytest.mark.skipif(torch.cuda.is_available(), reason="builds its failing runner by asking for CUDA on a CPU machine")
def test_a_unit_whose_runner_cannot_be_built_fails_instead_of_staying_running(
    conf: Settings, fdb: Database, api: TestClient, owner: dict[str, str], data: dict[str, Any]
) -> None:  # fmt: skip
    job_id = _post(api, owner, data)
    with fdb.session() as session:
        claim = lifecycle.claim_job(session, job_id=job_id, host=this_host(), pid=os.getpid(),
                                    owner_alive=lambda job: False)  # fmt: skip
    assert claim.outcome == "run"
    ctx = load_context(fdb, conf, job_id, claim.attempt)
    planned = [unit_crud.PlannedUnit(u.key, u.kind, u.stage, u.index, u.deps) for u in plan_units(ctx.spec)]
    with fdb.session() as session:
        unit_crud.plan(session, job_id=job_id, units=planned)
        key = unit_crud.ready_units(session, job_id)[0].key
        unit_claim = unit_crud.claim_unit(session, job_id=job_id, key=key, host=this_host(), pid=os.getpid())
    assert unit_claim.outcome == "run"
    # a job for a GPU on a worker without one: ExperimentRunner(...) raises before the unit's run starts
    on_cuda = dataclasses.replace(ctx, spec=ctx.spec.model_copy(update={"device": "cuda"}))
    outcome = run_unit(fdb, conf, on_cuda, key, unit_claim.attempt)
    assert outcome.status == "failed" and "CUDA" in outcome.error, outcome
    unit = _units(fdb, job_id)[key]
    assert unit.status == unit_crud.FAILED and unit.error == outcome.error and unit.finished_at is not None
    with fdb.session() as session:
        assert unit_crud.stop_reason(session, job_id=job_id) == f"unit {key} failed"
        lifecycle.finish_job(session, job_id=job_id, attempt=claim.attempt, status=JobStatus.failed,
                             error=outcome.error)  # fmt: skip


def test_a_claim_waits_for_a_cancel_in_flight_and_then_sees_it(
    conf: Settings, fdb: Database, api: TestClient, owner: dict[str, str], data: dict[str, Any]
) -> None:
    job_id = _post(api, owner, data)
    with fdb.session() as session:
        session.execute(update(Job).where(Job.id == job_id).values(status="running", attempts=1))
        session.commit()
        job = session.get(Job, job_id)
        assert job is not None
        spec = experiment_spec(dict(job.spec), job.queue, conf)
        planned = [unit_crud.PlannedUnit(u.key, u.kind, u.stage, u.index, u.deps) for u in plan_units(spec)]
        unit_crud.plan(session, job_id=job_id, units=planned)
        key = unit_crud.ready_units(session, job_id)[0].key
    cancelling = fdb.sessions()
    claimed: list[unit_crud.UnitClaim] = []
    try:
        # request_cancel's transaction, stopped before its commit: the row is locked FOR UPDATE, the flag set
        job = cancelling.get(Job, job_id, with_for_update=True)
        assert job is not None
        job.cancel_requested = True
        cancelling.flush()

        def claim() -> None:
            with fdb.session() as session:
                claimed.append(unit_crud.claim_unit(session, job_id=job_id, key=key, host="a", pid=1))

        claimer = threading.Thread(target=claim, daemon=True)
        claimer.start()
        claimer.join(1.5)
        assert claimer.is_alive() and not claimed, f"the claim did not wait for the cancel: {claimed}"
        cancelling.commit()
        claimer.join(10)
    finally:
        cancelling.close()
    assert len(claimed) == 1 and claimed[0].outcome == "skip" and claimed[0].reason == "the job is cancelling"
    assert _units(fdb, job_id)[key].status == unit_crud.QUEUED


def test_a_finished_job_shows_no_hosts_and_no_eta(
    conf: Settings, fdb: Database, api: TestClient, owner: dict[str, str], data: dict[str, Any]
) -> None:
    job_id = _post(api, owner, data)
    now = utcnow()
    with fdb.session() as session:
        session.execute(update(Job).where(Job.id == job_id).values(status="running", attempts=1))
        for position, (key, status) in enumerate([("generator:dcgan:0", "succeeded"),
                                                  ("classifier:baseline-seed0", "running"),
                                                  ("classifier:genmix-dcgan-seed0", "queued")]):  # fmt: skip
            session.add(JobUnit(job_id=job_id, key=key, kind=key.split(":")[0], stage=key, position=position,
                                deps=[], status=status, attempts=1, worker_host="genmix-host-a", worker_pid=1,
                                started_at=now - timedelta(seconds=30),
                                finished_at=now if status == "succeeded" else None,
                                eta_seconds=12.0 if status == "running" else None))  # fmt: skip
        session.commit()
    running = job_state(api, owner, job_id)
    assert running["units_summary"]["hosts"] == ["genmix-host-a"] and running["units_summary"]["eta_seconds"]
    with fdb.session() as session:  # the job ends (its delivery gave up waiting for the running unit)
        session.execute(update(Job).where(Job.id == job_id).values(status="cancelled", finished_at=utcnow()))
        session.commit()
    over = job_state(api, owner, job_id)
    assert over["status"] == "cancelled"
    assert over["units_summary"]["hosts"] == [] and over["units_summary"]["eta_seconds"] is None
    assert all(unit["eta_seconds"] is None for unit in over["units"])
    assert over["units_summary"]["counts"]["running"] == 1  # the rows are shown as they are
    with fdb.session() as session:
        assert session.scalar(select(JobUnit.eta_seconds).where(JobUnit.job_id == job_id,
                                                                JobUnit.status == "running")) == 12.0  # fmt: skip
