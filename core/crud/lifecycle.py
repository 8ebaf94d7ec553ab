"""A job's life as a worker drives it: claim (with the attempt cap), stages, progress, heartbeat, results.

Claiming is a compare-and-set on ``attempts``, so two deliveries of one message can never both run the job,
on PostgreSQL or SQLite alike. A delivery finds one of four things:

* the job is finished or gone: drop the message;
* another live worker holds it (same host: its pid is alive; other host: its heartbeat is fresh): ``busy``;
* it was already tried ``max_attempts`` times: mark it failed instead of looping on a poison job;
* otherwise: take it, count the attempt, and note when it is a redelivery.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.crud.events import add_event
from core.db.base import utcnow
from core.db.orm import Job, Run, RunClassMetric
from core.jobstate import TERMINAL, JobStatus, check, move


@dataclass(frozen=True)
class Claim:
    outcome: Literal["run", "skip", "busy"]
    attempt: int
    reason: str = ""


def claim_job(session: Session, *, job_id: str, host: str, pid: int, owner_alive: Callable[[Job], bool]) -> Claim:
    """Take a delivered job for this process, or say why not; commits.

    ``owner_alive`` tells whether the worker recorded on a running job is still at it (the worker knows how
    to check a process; the database layer does not).
    """
    for _ in range(10):
        job = session.get(Job, job_id, populate_existing=True)
        now = utcnow()
        if job is None:
            return Claim("skip", 0, "the job no longer exists")
        if JobStatus(job.status) in TERMINAL:
            return Claim("skip", job.attempts, f"the job is already {job.status}")
        if job.status == JobStatus.running.value and owner_alive(job):
            return Claim("busy", job.attempts, f"running on {job.worker_host} pid {job.worker_pid}")
        if job.cancel_requested:
            move(session, job, JobStatus.cancelled, reason="cancelled before it could resume")
            session.commit()
            return Claim("skip", job.attempts, "cancelled")
        attempt = job.attempts + 1
        if attempt > job.max_attempts:
            move(
                session,
                job,
                JobStatus.failed,
                error=(
                    f"gave up after {job.attempts} attempt(s): the worker was lost each time "
                    f"(last on {job.worker_host} pid {job.worker_pid})"
                ),
            )
            session.commit()
            return Claim("skip", job.attempts, "attempt cap reached")
        check(job.status, JobStatus.running)
        previous = (job.worker_host, job.worker_pid)
        # Compare-and-set on ``attempts``: of two deliveries racing here, exactly one updates the row.
        result = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.attempts == job.attempts)
            .values(attempts=attempt, worker_host=host, worker_pid=pid, heartbeat_at=now, error=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            session.rollback()
            continue
        session.refresh(job)
        move(session, job, JobStatus.running, attempt=attempt)
        if attempt > 1:
            add_event(
                session,
                job_id=job_id,
                kind="redelivered",
                data={"attempt": attempt, "previous_host": previous[0], "previous_pid": previous[1]},
            )
        session.commit()
        return Claim("run", attempt)
    return Claim("busy", 0, "lost the race to claim the job repeatedly")


def heartbeat(session: Session, *, job_id: str, attempt: int) -> tuple[bool, bool]:
    """Refresh the heartbeat; returns ``(still_ours, cancel_requested)``."""
    now = utcnow()
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.attempts == attempt, Job.status == JobStatus.running.value)
        .values(heartbeat_at=now)
        .execution_options(synchronize_session=False)
    )
    cancel = session.scalar(select(Job.cancel_requested).where(Job.id == job_id))
    session.commit()
    return result.rowcount == 1, bool(cancel)


def cancel_requested(session: Session, *, job_id: str) -> bool:
    value = session.scalar(select(Job.cancel_requested).where(Job.id == job_id))
    session.rollback()
    return value is None or bool(value)


def set_stage(session: Session, *, job_id: str, attempt: int, name: str, index: int, count: int) -> None:
    now = utcnow()
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.attempts == attempt)
        .values(
            stage=name,
            stage_index=index,
            stage_count=count,
            stage_started_at=now,
            step=0,
            total=None,
            eta_seconds=None,
            progress_metrics=None,
            heartbeat_at=now,
        )  # fmt: skip
        .execution_options(synchronize_session=False)
    )
    add_event(session, job_id=job_id, kind="stage", data={"stage": name, "index": index, "count": count})
    session.commit()


def set_progress(
    session: Session,
    *,
    job_id: str,
    attempt: int,
    step: int,
    total: int,
    eta_seconds: float | None,
    metrics: dict[str, float],
) -> None:
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.attempts == attempt)
        .values(step=step, total=total, eta_seconds=eta_seconds, progress_metrics=metrics, heartbeat_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.commit()


def record_run(
    session: Session,
    *,
    job_id: str,
    record: dict[str, Any],
    class_names: list[str],
    announce: Literal["always", "if_new", "never"] = "always",
) -> Run:
    """Insert (or replace, on a resumed job) one arm x seed result with its metrics as columns; ``announce``: its
    ``run_finished`` event always, only for a run not stored before (a job's final write of all its results), or
    never (the runs an extended job reuses: they finished in the job it extends)."""
    metrics = record.get("metrics") or {}
    run = session.scalars(select(Run).where(Run.job_id == job_id, Run.run_id == record["run_id"])).one_or_none()
    announced = announce == "always" or (announce == "if_new" and run is None)
    if run is None:
        run = Run(job_id=job_id, run_id=record["run_id"])
        session.add(run)
    run.arm = record["arm"]
    run.generator = record.get("generator")
    run.seed = int(record["seed"])
    run.accuracy = _float(metrics.get("accuracy"))
    run.macro_f1 = _float(metrics.get("macro_f1"))
    run.balanced_accuracy = _float(metrics.get("balanced_accuracy"))
    run.auc = _float(metrics.get("auc"))
    run.best_epoch = record.get("best_epoch")
    run.epochs_trained = record.get("epochs_trained")
    run.record = record
    run.class_metrics.clear()
    session.flush()
    for k, entry in enumerate(metrics.get("per_class") or []):
        name = str(entry.get("class", class_names[k] if k < len(class_names) else k))
        run.class_metrics.append(
            RunClassMetric(
                class_index=k,
                class_name=name,
                support=int(entry.get("support", 0)),
                sensitivity=_float(entry.get("sensitivity")),
                specificity=_float(entry.get("specificity")),
                precision=_float(entry.get("precision")),
                f1=_float(entry.get("f1")),
            )
        )
    if announced:
        _announce_run(session, job_id, run)
    session.commit()
    return run


def record_extension(session: Session, *, job_id: str, extends: str, files: int | None,
                     records: list[dict[str, Any]], class_names: list[str]) -> None:  # fmt: skip
    """The finished runs of an extended job, stored as its own from the start (without a ``run_finished`` event
    each: they ran in the job it extends, or in an earlier delivery of this one), and, on the delivery that copied
    the ``files``, one ``extended`` event that says what was reused."""
    for record in records:
        record_run(session, job_id=job_id, record=record, class_names=class_names, announce="never")
    if files is not None:
        add_event(session, job_id=job_id, kind="extended", data={"extends": extends, "files": files,
                                                                 "runs_reused": len(records)})  # fmt: skip
    session.commit()


def _announce_run(session: Session, job_id: str, run: Run) -> None:
    add_event(
        session,
        job_id=job_id,
        kind="run_finished",
        data={
            "run_id": run.run_id,
            "arm": run.arm,
            "generator": run.generator,
            "seed": run.seed,
            "accuracy": run.accuracy,
            "macro_f1": run.macro_f1,
            "balanced_accuracy": run.balanced_accuracy,
            "auc": run.auc,
        },
    )


def _float(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if number != number else number


def add_job_event(session: Session, *, job_id: str, kind: str, data: dict[str, Any]) -> None:
    add_event(session, job_id=job_id, kind=kind, data=data)
    session.commit()


def finish_job(
    session: Session, *, job_id: str, attempt: int, status: JobStatus, error: str | None = None, **data: Any
) -> bool:
    """Record the final status unless another delivery took the job over; returns whether it was recorded.

    A job that would succeed after its cancel was acknowledged (``POST /jobs/{id}/cancel`` answered 202 while
    its last stage or wrap-up ran) ends ``cancelled``: what it finished is kept, as for any cancel.
    """
    job = session.get(Job, job_id, populate_existing=True, with_for_update=True)
    if job is None or job.attempts != attempt or JobStatus(job.status) in TERMINAL:
        session.rollback()
        return False
    if status == JobStatus.succeeded and job.cancel_requested:
        status, data = JobStatus.cancelled, {**data, "reason": "cancelled by request as it finished"}
    move(session, job, status, error=error, **data)
    if status == JobStatus.succeeded:
        job.step = job.total
    session.commit()
    return True
