"""The append-only job event log (status changes, stages, finished runs, resumes), streamed by SSE."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db.orm import JobEvent


def add_event(session: Session, *, job_id: str, kind: str, data: dict[str, Any] | None = None) -> JobEvent:
    """Stage an event in the caller's transaction (the caller commits)."""
    event = JobEvent(job_id=job_id, kind=kind, data=data or {})
    session.add(event)
    return event


def events_after(session: Session, *, job_id: str, after_id: int = 0, limit: int = 500) -> list[JobEvent]:
    query = select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.id > after_id).order_by(JobEvent.id).limit(limit)
    return list(session.scalars(query))
