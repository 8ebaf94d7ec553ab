"""Claiming a delivered job on PostgreSQL: one delivery runs it, a live owner makes it busy, a dead owner's job
is taken over and counted, and a job past its attempt cap is failed instead of looping."""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from datetime import timedelta
from functools import partial

import pytest
import redis

from core.crud import lifecycle
from core.db.base import utcnow
from core.db.orm import Job, JobEvent
from core.db.session import Database
from core.settings import Settings
from service.helpers import REDIS_URL
from workers.liveness import owner_alive
from workers.recovery import recover_orphans


def _job(db: Database, dataset_id: str, owner: str, **fields) -> str:
    job_id = str(uuid.uuid4())
    with db.session() as session:
        values = {"spec": {}, "queue": "gpu", "status": "queued", "max_attempts": 2, **fields}
        session.add(Job(id=job_id, owner=owner, dataset_id=dataset_id, out_dir=f"jobs/{job_id}", **values))
        session.commit()
    return job_id


def _claim(db: Database, job_id: str, pid: int, host: str = "this-host") -> lifecycle.Claim:
    with db.session() as session:
        alive = partial(owner_alive, host=host, stale_after=60)
        return lifecycle.claim_job(session, job_id=job_id, host=host, pid=pid, owner_alive=alive)


def test_claim_take_over_and_attempt_cap(db: Database, dataset: dict) -> None:
    job_id = _job(db, dataset["id"], "lifecycle-owner")
    first = _claim(db, job_id, os.getpid())
    assert first == lifecycle.Claim("run", 1)
    # a second delivery while this (live) process holds it
    assert _claim(db, job_id, os.getpid() + 1).outcome == "busy"
    # the holder dies: the next delivery takes over and counts an attempt
    dead = subprocess.Popen(["true"])
    dead.wait()
    with db.session() as session:
        session.get(Job, job_id).worker_pid = dead.pid
        session.commit()
    assert _claim(db, job_id, os.getpid()) == lifecycle.Claim("run", 2)
    with db.session() as session:
        session.get(Job, job_id).worker_pid = dead.pid
        session.commit()
    # past max_attempts (2): failed, not run again
    capped = _claim(db, job_id, os.getpid())
    assert capped.outcome == "skip"
    with db.session() as session:
        job = session.get(Job, job_id)
        assert job.status == "failed" and "gave up after 2 attempt(s)" in job.error
        kinds = [e.kind for e in session.query(JobEvent).filter_by(job_id=job_id).order_by(JobEvent.id)]
    assert kinds.count("redelivered") == 1 and kinds[-1] == "status"
    assert _claim(db, job_id, os.getpid()).outcome == "skip"


def test_other_host_uses_the_heartbeat(db: Database, dataset: dict) -> None:
    fresh = _job(db, dataset["id"], "lifecycle-owner", status="running", attempts=1, worker_host="elsewhere",
                 worker_pid=1, heartbeat_at=utcnow())  # fmt: skip
    assert _claim(db, fresh, os.getpid()).outcome == "busy"
    stale = _job(db, dataset["id"], "lifecycle-owner", status="running", attempts=1, worker_host="elsewhere",
                 worker_pid=1, heartbeat_at=utcnow() - timedelta(minutes=5))  # fmt: skip
    assert _claim(db, stale, os.getpid()) == lifecycle.Claim("run", 2)
    with db.session() as session:
        ours, cancel = lifecycle.heartbeat(session, job_id=stale, attempt=2)
        assert ours and not cancel
        assert lifecycle.heartbeat(session, job_id=stale, attempt=1) == (False, False)


def test_cancelled_or_finished_jobs_are_not_run(db: Database, dataset: dict) -> None:
    cancelled = _job(db, dataset["id"], "lifecycle-owner", cancel_requested=True)
    assert _claim(db, cancelled, os.getpid()).outcome == "skip"
    with db.session() as session:
        assert session.get(Job, cancelled).status == "cancelled"
    done = _job(db, dataset["id"], "lifecycle-owner", status="succeeded")
    assert _claim(db, done, os.getpid()).outcome == "skip"
    assert _claim(db, str(uuid.uuid4()), os.getpid()).outcome == "skip"


def test_orphaned_running_job_is_requeued(db: Database, dataset: dict, settings: Settings, redis_prefix: str) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = _job(db, dataset["id"], "lifecycle-owner", status="running", attempts=1,
                  worker_host=socket.gethostname(), worker_pid=dead.pid, heartbeat_at=utcnow())  # fmt: skip
    alive = _job(db, dataset["id"], "lifecycle-owner", status="running", attempts=1,
                 worker_host=socket.gethostname(), worker_pid=os.getpid(), heartbeat_at=utcnow())  # fmt: skip
    client = redis.Redis.from_url(REDIS_URL)
    before = client.llen(f"{redis_prefix}gpu")
    requeued = recover_orphans(settings)
    assert orphan in requeued and alive not in requeued
    assert client.llen(f"{redis_prefix}gpu") == before + len(requeued)
    with db.session() as session:
        kinds = [e.kind for e in session.query(JobEvent).filter_by(job_id=orphan)]
        assert "requeued" in kinds
        for job_id in requeued:  # leave nothing runnable behind for the session's worker
            session.get(Job, job_id).status = "failed"
        session.commit()


def test_state_machine_refuses_illegal_moves(db: Database, dataset: dict) -> None:
    """Every status change goes through core.jobstate.move: a finished job cannot run or finish again."""
    from core.jobstate import IllegalTransition, JobStatus, move

    job_id = _job(db, dataset["id"], "lifecycle-owner")
    with db.session() as session:
        job = session.get(Job, job_id)
        move(session, job, JobStatus.running, attempt=1)
        move(session, job, JobStatus.succeeded)
        session.commit()
        assert job.finished_at is not None and job.started_at is not None
        for target in JobStatus:
            with pytest.raises(IllegalTransition, match="succeeded job cannot become"):
                move(session, job, target)
        session.rollback()
        statuses = [e.data["status"] for e in session.query(JobEvent).filter_by(job_id=job_id, kind="status")]
    assert statuses == ["running", "succeeded"]
    # a finished job delivered again is dropped by the claim, never set running
    assert _claim(db, job_id, os.getpid()).outcome == "skip"
