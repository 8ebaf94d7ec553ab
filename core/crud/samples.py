"""Sample records (real, synthetic, GenMix PNGs): written by workers, listed and served by the API."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.db.orm import Job, Sample


def find_sample(session: Session, *, job_id: str, source_key: str) -> Sample | None:
    return session.scalars(select(Sample).where(Sample.job_id == job_id, Sample.source_key == source_key)).one_or_none()


def add_sample(session: Session, *, job_id: str, source_key: str, **fields: Any) -> Sample:
    """Insert a sample once per ``(job, source_key)``; a resumed job gets the existing row back."""
    existing = find_sample(session, job_id=job_id, source_key=source_key)
    if existing is not None:
        return existing
    sample = Sample(job_id=job_id, source_key=source_key, **fields)
    session.add(sample)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        existing = find_sample(session, job_id=job_id, source_key=source_key)
        if existing is None:
            raise
        return existing
    return sample


def list_samples(
    session: Session,
    *,
    owner: str,
    job_id: str | None,
    kind: str | None,
    label: int | None,
    limit: int,
    offset: int,
) -> tuple[list[Sample], int]:
    where = [Job.owner == owner]
    if job_id is not None:
        where.append(Sample.job_id == job_id)
    if kind is not None:
        where.append(Sample.kind == kind)
    if label is not None:
        where.append(Sample.label == label)
    base = select(Sample).join(Job, Job.id == Sample.job_id).where(*where)
    count = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    rows = session.scalars(base.order_by(Sample.id).limit(limit).offset(offset))
    return list(rows), count


def sample_location(session: Session, *, sample_id: int, owner: str) -> str | None:
    """The stored path of ``owner``'s sample ``sample_id`` (None for a missing sample and another owner's alike,
    by one query); samples never change, so callers may cache this."""
    return session.scalar(
        select(Sample.path).join(Job, Job.id == Sample.job_id).where(Sample.id == sample_id, Job.owner == owner)
    )
