"""A job's units as workers drive them: plan, publish when ready, claim, heartbeat, progress, finish.

The rules are the job's own, per unit (see :mod:`core.crud.lifecycle`):

* a claim is a compare-and-set (``status = 'queued'`` and the ``attempts`` it read), so two deliveries of one
  unit message, or the coordinator and another worker, never both run a unit;
* a unit whose worker is gone (same host: its pid is dead; another host: its heartbeat is older than
  ``stale_after``) goes back to ``queued`` and is published again; it resumes from its checkpoint;
* a unit may be claimed ``max_attempts`` times (the job's cap); one more fails it, and with it the job;
* ``enqueued_at`` marks a unit as published: once every unit in ``deps`` has succeeded, whichever process
  sees that first sets it (a compare-and-set too) and publishes the unit's message after its commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.crud.events import add_event
from core.db.base import utcnow
from core.db.orm import Job, JobUnit
from core.jobstate import TERMINAL, JobStatus

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
UNIT_STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)


@dataclass(frozen=True)
class PlannedUnit:
    """What the database needs of a :class:`models.units.Unit` (``done``: its output is already on disk)."""

    key: str
    kind: str
    stage: str
    position: int
    deps: tuple[str, ...]
    done: bool = False


def plan(session: Session, *, job_id: str, units: Sequence[PlannedUnit]) -> None:
    """Insert the job's units that are missing; on a redelivered job, put its failed and cancelled units back in
    the queue (a fresh attempt count), mark every queued unit unpublished (the previous delivery revoked its
    messages) and every unit whose output is on disk succeeded. Running units are
    left to their workers (a dead one's unit is re-queued by :func:`requeue_dead`). Commits."""
    existing = {unit.key: unit for unit in session.scalars(select(JobUnit).where(JobUnit.job_id == job_id))}
    now = utcnow()
    for planned in units:
        row = existing.get(planned.key)
        if row is None:
            row = JobUnit(job_id=job_id, key=planned.key, kind=planned.kind, stage=planned.stage,
                          position=planned.position, deps=list(planned.deps), status=QUEUED, attempts=0)  # fmt: skip
            session.add(row)
        elif row.status in (FAILED, CANCELLED):
            row.status, row.attempts, row.error = QUEUED, 0, None
        if row.status == QUEUED:  # the previous delivery revoked its messages as it ended: publish them again
            row.enqueued_at = row.message_id = None
        if planned.done and row.status != SUCCEEDED and row.status != RUNNING:
            row.status, row.finished_at = SUCCEEDED, row.finished_at or now
    session.commit()


def units_of(session: Session, job_id: str) -> list[JobUnit]:
    return list(session.scalars(select(JobUnit).where(JobUnit.job_id == job_id).order_by(JobUnit.position)))


def _ready(units: Iterable[JobUnit]) -> list[JobUnit]:
    rows = list(units)
    done = {unit.key for unit in rows if unit.status == SUCCEEDED}
    return [unit for unit in rows if unit.status == QUEUED and all(dep in done for dep in unit.deps)]


def ready_units(session: Session, job_id: str) -> list[JobUnit]:
    """Queued units whose dependencies have all succeeded, in one-worker order."""
    return _ready(units_of(session, job_id))


def mark_enqueued(session: Session, *, job_id: str) -> list[tuple[str, str]]:
    """Mark every ready, not yet published unit as published with a new message id; returns (key, message id)
    pairs (publish them after this commit). Of two processes racing here, each key goes to exactly one."""
    now = utcnow()
    marked = []
    for unit in ready_units(session, job_id):
        if unit.enqueued_at is not None:
            continue
        message_id = f"genmix-unit-{uuid.uuid4().hex}"
        result = session.execute(
            update(JobUnit)
            .where(JobUnit.id == unit.id, JobUnit.enqueued_at.is_(None), JobUnit.status == QUEUED)
            .values(enqueued_at=now, message_id=message_id)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            marked.append((unit.key, message_id))
    session.commit()
    return marked


def waiting_messages(session: Session, *, job_id: str) -> list[str]:
    """The message ids of units still queued with a message out: nobody needs them once the job has ended."""
    ids = session.scalars(
        select(JobUnit.message_id).where(JobUnit.job_id == job_id, JobUnit.status == QUEUED,
                                         JobUnit.enqueued_at.is_not(None), JobUnit.message_id.is_not(None))
    ).all()  # fmt: skip
    session.rollback()
    return [i for i in ids if i]


@dataclass(frozen=True)
class UnitClaim:
    outcome: Literal["run", "skip"]
    attempt: int = 0
    reason: str = ""
    open: bool = False
    """Skipped for this unit's sake only (taken, finished, not ready): the job may have other units to run."""
    message_id: str | None = None
    """The unit's latest message (a claim not made through it leaves it to be revoked)."""


def claim_unit(session: Session, *, job_id: str, key: str, host: str, pid: int) -> UnitClaim:
    """Take a ready, queued unit of a running job for this process, or say why not; commits.

    The job row is read ``FOR SHARE`` until the claim commits, which serialises it with
    :func:`core.crud.jobs.request_cancel` (``FOR UPDATE``): a claim either commits before the cancel (the
    cancel then sees the unit running and stops it) or sees the cancel flag, never a unit started after it."""
    job = session.get(Job, job_id, populate_existing=True, with_for_update={"read": True})
    if job is None:
        session.rollback()
        return UnitClaim("skip", reason="the job no longer exists")
    if job.status != JobStatus.running.value or job.cancel_requested:
        session.rollback()
        return UnitClaim("skip", reason=f"the job is {'cancelling' if job.cancel_requested else job.status}")
    rows = units_of(session, job_id)
    unit = next((row for row in rows if row.key == key), None)
    if unit is None:
        session.rollback()
        return UnitClaim("skip", reason="the job has no such unit")
    if any(row.status == FAILED for row in rows):
        session.rollback()
        return UnitClaim("skip", reason="another unit of the job failed")
    if unit not in _ready(rows):
        session.rollback()
        return UnitClaim("skip", reason=f"the unit is {unit.status}" if unit.status != QUEUED else "not ready",
                         open=True)  # fmt: skip
    attempt = unit.attempts + 1
    now = utcnow()
    if attempt > job.max_attempts:
        session.execute(
            update(JobUnit)
            .where(JobUnit.id == unit.id, JobUnit.status == QUEUED, JobUnit.attempts == unit.attempts)
            .values(status=FAILED, finished_at=now, error=(
                f"unit {key} gave up after {unit.attempts} attempt(s): its worker was lost each time "
                f"(last on {unit.worker_host} pid {unit.worker_pid})"))
            .execution_options(synchronize_session=False)
        )  # fmt: skip
        session.commit()
        return UnitClaim("skip", reason="attempt cap reached")
    previous = (unit.worker_host, unit.worker_pid)
    result = session.execute(
        update(JobUnit)
        .where(JobUnit.id == unit.id, JobUnit.status == QUEUED, JobUnit.attempts == unit.attempts)
        .values(
            status=RUNNING,
            attempts=attempt,
            worker_host=host,
            worker_pid=pid,
            heartbeat_at=now,
            started_at=now,
            finished_at=None,
            error=None,
            step=0,
            total=None,
            eta_seconds=None,
            resumed_step=None,
        )  # fmt: skip
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        session.rollback()
        return UnitClaim("skip", reason="another worker claimed it first", open=True)
    data: dict[str, Any] = {"unit": key, "status": RUNNING, "attempt": attempt, "host": host, "pid": pid}
    if attempt > 1:
        data.update(previous_host=previous[0], previous_pid=previous[1])
    add_event(session, job_id=job_id, kind="unit", data=data)
    session.commit()
    return UnitClaim("run", attempt, message_id=unit.message_id if unit.enqueued_at is not None else None)


def heartbeat_unit(session: Session, *, job_id: str, key: str, attempt: int) -> str | None:
    """Refresh a running unit's heartbeat; returns why it must stop (None: carry on). Commits."""
    result = session.execute(
        update(JobUnit)
        .where(JobUnit.job_id == job_id, JobUnit.key == key, JobUnit.attempts == attempt, JobUnit.status == RUNNING)
        .values(heartbeat_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    reason = stop_reason(session, job_id=job_id)
    session.commit()
    if result.rowcount != 1:
        return "another delivery took the unit over"
    return reason


def stop_reason(session: Session, *, job_id: str) -> str | None:
    """Why every unit of the job must stop now: a cancel, a finished job, or a failed unit (None: none)."""
    row = session.execute(select(Job.status, Job.cancel_requested).where(Job.id == job_id)).one_or_none()
    if row is None:
        return "the job no longer exists"
    if row.cancel_requested:
        return "cancelled by request"
    if JobStatus(row.status) in TERMINAL:
        return f"the job is {row.status}"
    failed = session.scalar(
        select(JobUnit.key).where(JobUnit.job_id == job_id, JobUnit.status == FAILED).order_by(JobUnit.position)
    )
    return f"unit {failed} failed" if failed else None


def unit_progress(session: Session, *, job_id: str, key: str, attempt: int, step: int, total: int,
                  eta_seconds: float | None) -> None:  # fmt: skip
    session.execute(
        update(JobUnit)
        .where(JobUnit.job_id == job_id, JobUnit.key == key, JobUnit.attempts == attempt)
        .values(step=step, total=total, eta_seconds=eta_seconds, heartbeat_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.commit()


def unit_resumed(session: Session, *, job_id: str, key: str, attempt: int, step: int) -> None:
    session.execute(
        update(JobUnit)
        .where(JobUnit.job_id == job_id, JobUnit.key == key, JobUnit.attempts == attempt)
        .values(resumed_step=step)
        .execution_options(synchronize_session=False)
    )
    session.commit()


def finish_unit(session: Session, *, job_id: str, key: str, attempt: int, status: str,
                error: str | None = None) -> bool:  # fmt: skip
    """Record how this attempt of the unit ended (unless another delivery took it over); commits.

    ``queued`` gives a stopped unit back (a cancel or a failed sibling stopped it: a redelivered job resumes it
    from its checkpoint)."""
    now = utcnow()
    values: dict[str, Any] = {"status": status, "error": error, "eta_seconds": None}
    values["finished_at"] = None if status == QUEUED else now
    if status == QUEUED:
        values["enqueued_at"] = None
    if status == SUCCEEDED:
        values["step"] = JobUnit.total
    result = session.execute(
        update(JobUnit)
        .where(JobUnit.job_id == job_id, JobUnit.key == key, JobUnit.attempts == attempt, JobUnit.status == RUNNING)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 1:
        data: dict[str, Any] = {"unit": key, "status": status, "attempt": attempt}
        if error:
            data["error"] = error
        add_event(session, job_id=job_id, kind="unit", data=data)
    session.commit()
    return result.rowcount == 1


def requeue_dead(session: Session, *, job_id: str, alive: Callable[[JobUnit], bool]) -> list[str]:
    """Put back in the queue every running unit whose worker is gone; returns their keys. Commits."""
    keys = []
    for unit in session.scalars(select(JobUnit).where(JobUnit.job_id == job_id, JobUnit.status == RUNNING)):
        if alive(unit):
            continue
        result = session.execute(
            update(JobUnit)
            .where(JobUnit.id == unit.id, JobUnit.status == RUNNING, JobUnit.attempts == unit.attempts)
            .values(status=QUEUED, enqueued_at=None, eta_seconds=None)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            keys.append(unit.key)
            add_event(session, job_id=job_id, kind="unit", data={
                "unit": unit.key, "status": QUEUED, "reason": "its worker is gone",
                "previous_host": unit.worker_host, "previous_pid": unit.worker_pid})  # fmt: skip
    session.commit()
    return keys


def counts(session: Session, job_id: str) -> dict[str, int]:
    """Units per status."""
    rows = session.execute(
        select(JobUnit.status, func.count()).where(JobUnit.job_id == job_id).group_by(JobUnit.status)
    ).all()
    return {status: int(n) for status, n in rows}


def summarise(units: Sequence[JobUnit], *, job_over: bool = False) -> dict[str, Any]:
    """The units of a job at a glance: per status, the hosts running them, and an ETA for the whole job.

    The ETA is the longest ETA of a running unit plus the queued units' share of the hosts at work, each as long
    as the finished units took on average (None until one has finished, or while nothing runs). ``job_over``:
    the job has a final status, so nothing of it runs any more whatever its unit rows last said: no hosts, no
    ETA."""
    counts: dict[str, int] = dict.fromkeys(UNIT_STATUSES, 0)
    for unit in units:
        counts[unit.status] = counts.get(unit.status, 0) + 1
    running = [] if job_over else [unit for unit in units if unit.status == RUNNING]
    hosts = sorted({unit.worker_host for unit in running if unit.worker_host})
    took = [(unit.finished_at - unit.started_at).total_seconds() for unit in units
            if unit.status == SUCCEEDED and unit.started_at and unit.finished_at]  # fmt: skip
    eta: float | None = None
    if took and not job_over and (running or counts[QUEUED]):
        longest = max((unit.eta_seconds or 0.0 for unit in running), default=0.0)
        eta = longest + counts[QUEUED] * (sum(took) / len(took)) / max(1, len(hosts))
    return {"total": len(units), "counts": counts, "hosts": hosts, "eta_seconds": eta}
