"""Jobs as the API sees them: create (idempotently), list, read, cancel. Worker side: lifecycle.py."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from core.crud.events import add_event
from core.db.orm import Dataset, IdempotencyKey, Job, Run
from core.jobspec import JobCreate
from core.jobstate import TERMINAL, JobStatus, move, record_created
from core.settings import Settings
from models.spec import spec_fields
from models.studies import extension_conflicts


class IdempotencyConflictError(Exception):
    """The Idempotency-Key was used before with a different request body."""


class DatasetNotFoundError(Exception):
    """The job names a dataset the caller does not own (or that does not exist)."""


class ExtendedJobNotFoundError(Exception):
    """The job extends a job the caller does not own (or that does not exist)."""


class ExtendedJobActiveError(Exception):
    """The job extends a job that has not ended: its folder is still being written."""


class ExtensionConflictError(ValueError):
    """The job cannot extend the one it names: another dataset, or settings its finished runs were not made with."""


def check_extension(session: Session, *, owner: str, spec: JobCreate) -> None:
    """Refuse, before anything is stored, an extension whose reused runs would not be runs of this job's design."""
    if spec.extends is None:
        return
    parent = session.scalars(select(Job).where(Job.id == spec.extends, Job.owner == owner)).one_or_none()
    if parent is None:
        raise ExtendedJobNotFoundError(spec.extends)
    if JobStatus(parent.status) not in TERMINAL:
        raise ExtendedJobActiveError(f"job {parent.id} is {parent.status}: extend it once it has ended")
    if parent.dataset_id != spec.dataset_id:
        other = parent.spec.get("dataset_name")
        raise ExtensionConflictError(
            f"extends: job {parent.id} ran on another dataset ({other}); choose a job of this one"
        )
    conflicts = extension_conflicts(spec_fields(parent.spec), spec_fields(spec.model_dump(mode="json")))
    if conflicts:
        raise ExtensionConflictError(f"extends: job {parent.id}'s finished runs were made with other settings: "
                                     f"{'; '.join(conflicts)}; keep its settings, or launch a new job")  # fmt: skip


def request_fingerprint(spec: JobCreate) -> str:
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _existing(session: Session, owner: str, key: str, fingerprint: str) -> Job | None:
    row = session.scalars(
        select(IdempotencyKey).where(IdempotencyKey.owner == owner, IdempotencyKey.key == key)
    ).one_or_none()
    if row is None:
        return None
    if row.request_sha256 != fingerprint:
        raise IdempotencyConflictError(f"Idempotency-Key {key!r} was already used with a different request")
    return session.get(Job, row.job_id)


def create_job(
    session: Session, settings: Settings, *, owner: str, spec: JobCreate, idempotency_key: str | None = None
) -> tuple[Job, bool]:
    """Insert a queued job and commit; returns ``(job, created)``. The caller publishes after the commit."""
    fingerprint = request_fingerprint(spec)
    if idempotency_key is not None:
        existing = _existing(session, owner, idempotency_key, fingerprint)
        if existing is not None:
            return existing, False
    # No row lock here: the foreign key guards existence, and a dataset deleted in the meantime fails the job
    # with a clear error in the worker.
    dataset = session.scalars(
        select(Dataset).where(Dataset.id == spec.dataset_id, Dataset.owner == owner)
    ).one_or_none()
    if dataset is None:
        session.rollback()
        raise DatasetNotFoundError(spec.dataset_id)
    try:
        check_extension(session, owner=owner, spec=spec)
    except Exception:
        session.rollback()
        raise
    job_id = str(uuid.uuid4())
    stored: dict[str, Any] = spec.model_dump(mode="json")
    stored["dataset_name"] = dataset.name
    stored["class_names"] = list(dataset.class_names)
    stored["dataset_decode"] = dataset.decode
    if stored["samples_per_class"] is None:
        stored["samples_per_class"] = settings.samples_per_class
    stored["samples_per_class"] = min(stored["samples_per_class"], settings.max_samples_per_class)
    job = Job(
        id=job_id,
        owner=owner,
        dataset_id=dataset.id,
        spec=stored,
        queue=spec.resolve_queue(settings),
        status=JobStatus.queued.value,
        attempts=0,
        max_attempts=settings.max_attempts,
        cancel_requested=False,
        out_dir=f"jobs/{job_id}",
    )
    session.add(job)
    session.flush()
    record_created(session, job)
    if idempotency_key is not None:
        session.add(IdempotencyKey(owner=owner, key=idempotency_key, request_sha256=fingerprint, job_id=job_id))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        if idempotency_key is None:
            raise
        existing = _existing(session, owner, idempotency_key, fingerprint)
        if existing is None:
            raise
        return existing, False
    return job, True


def get_job(session: Session, *, owner: str, job_id: str, with_runs: bool = False) -> Job | None:
    query = select(Job).where(Job.id == job_id, Job.owner == owner)
    if with_runs:
        query = query.options(selectinload(Job.runs).selectinload(Run.class_metrics), selectinload(Job.units))
    return session.scalars(query).one_or_none()


def list_jobs(
    session: Session, *, owner: str, status: JobStatus | None, limit: int, offset: int
) -> tuple[list[Job], int]:
    where = [Job.owner == owner]
    if status is not None:
        where.append(Job.status == status.value)
    count = session.scalar(select(func.count()).select_from(Job).where(*where)) or 0
    query = select(Job).where(*where).order_by(Job.created_at.desc(), Job.id).limit(limit).offset(offset)
    return list(session.scalars(query)), count


class JobFinishedError(Exception):
    """The job already reached a final status."""


def request_cancel(session: Session, *, job: Job) -> Job:
    """Set the cancel flag; a queued job is cancelled at once, a running one by its worker within seconds."""
    session.refresh(job, with_for_update=True)
    if JobStatus(job.status) in TERMINAL:
        session.rollback()
        raise JobFinishedError(f"job {job.id} already {job.status}")
    job.cancel_requested = True
    if job.status == JobStatus.queued.value:
        move(session, job, JobStatus.cancelled, reason="cancelled by request")
    else:
        add_event(session, job_id=job.id, kind="cancel_requested", data={})
    session.commit()
    return job
