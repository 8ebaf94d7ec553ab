"""The job state machine, written once: the statuses, the legal moves between them, and the one function that
makes a move (status, timestamps, the ``status`` event). Every status change of a job goes through
:func:`move`; an illegal one raises :class:`IllegalTransition` instead of corrupting the record.

::

    queued  ──claim──▶ running ──▶ succeeded | failed | cancelled
      │                  │ ▲
      │                  └─┘ a redelivery re-claims a job whose worker died
      └──▶ cancelled (cancel while queued) | failed (attempt cap; the worker sweep republishes a job the broker refused)
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from core.crud.events import add_event
from core.db.base import utcnow
from core.db.orm import Job


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


TERMINAL = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled})

TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.queued: frozenset({JobStatus.running, JobStatus.cancelled, JobStatus.failed}),
    JobStatus.running: frozenset({JobStatus.running, *TERMINAL}),
    **{status: frozenset() for status in TERMINAL},
}


class IllegalTransition(RuntimeError):
    """A status change the state machine does not allow (e.g. a finished job set running again)."""


def check(current: str | JobStatus, target: JobStatus) -> None:
    """Raise :class:`IllegalTransition` unless ``current → target`` is a legal move."""
    if target not in TRANSITIONS[JobStatus(current)]:
        raise IllegalTransition(f"a {JobStatus(current).value} job cannot become {target.value}")


def move(session: Session, job: Job, target: JobStatus, **event: Any) -> None:
    """Move ``job`` to ``target`` in the caller's transaction: status, timestamps, and the ``status`` event.

    ``event`` goes into the event's data (``error``, ``reason``, ``attempt``...); ``error`` is also stored on
    the job. The caller commits. Claims use a compare-and-set update instead (see ``crud.lifecycle``) and
    call :func:`check` first, so the same table of moves governs them.
    """
    check(job.status, target)
    now = utcnow()
    job.status = target.value
    if target == JobStatus.running:
        job.started_at = job.started_at or now
    if target in TERMINAL:
        job.finished_at = now
        job.eta_seconds = None
        job.error = event.get("error")
    add_event(session, job_id=job.id, kind="status", data={"status": target.value, **event})


def record_created(session: Session, job: Job) -> None:
    """The first event of every job: it was created ``queued`` (the only way a job starts)."""
    if job.status != JobStatus.queued.value:
        raise IllegalTransition(f"a job is created queued, not {job.status}")
    add_event(session, job_id=job.id, kind="status", data={"status": JobStatus.queued.value})
