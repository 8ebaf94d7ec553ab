"""One delivery of one job: claim it, run (or resume) the experiment, record what it produced, close it.

The science is :func:`models.experiment.run_experiment`; its output folder is ``<artifact_root>/jobs/<id>``
on every attempt, so a redelivered job skips finished stages and resumes training from checkpoints.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from core.crud import lifecycle
from core.db.orm import Dataset, Job
from core.db.session import Database
from core.joberrors import public_error
from core.jobspec import with_server_settings
from core.jobstate import JobStatus
from core.settings import Settings
from core.storage import ArtifactStore
from models.spec import ExperimentSpec, spec_fields
from workers import dbretry
from workers.artifacts import ArtifactRecorder
from workers.liveness import owner_alive
from workers.monitor import JobMonitor
from workers.observer import DbObserver
from workers.samples import SampleWriter

log = logging.getLogger("genmix.worker")


class JobBusyError(Exception):
    """Another live worker holds the job; the task retries later instead of running it twice."""


@dataclass(frozen=True)
class Outcome:
    status: str
    detail: str = ""


def experiment_spec(stored: dict[str, Any], queue: str, settings: Settings) -> ExperimentSpec:
    """The job's stored spec (validated at the door, read back through the same model) as this worker runs it."""
    return with_server_settings(ExperimentSpec.model_validate(spec_fields(stored)), settings, queue)


def _error_text(exc: BaseException) -> str:
    """What the job's client reads (a sentence, no server path); the traceback goes to this worker's log."""
    return public_error(exc)


def execute(job_id: str, settings: Settings) -> Outcome:
    """Run one delivery of ``job_id``; raises :class:`JobBusyError` when another live worker holds it."""
    db = Database(settings.database_url)
    try:
        return _execute(db, job_id, settings)
    finally:
        db.dispose()


def _execute(db: Database, job_id: str, settings: Settings) -> Outcome:
    host, pid = socket.gethostname(), os.getpid()
    alive = partial(owner_alive, host=host, stale_after=settings.stale_after)
    try:
        claim = dbretry.write(db, lambda session: lifecycle.claim_job(
            session, job_id=job_id, host=host, pid=pid, owner_alive=alive),
            seconds=settings.db_retry_seconds, what=f"job {job_id}: claim")  # fmt: skip
    except dbretry.DatabaseUnavailable as exc:  # nothing was taken: deliver the message again later
        raise JobBusyError(str(exc)) from None
    if claim.outcome == "busy":
        raise JobBusyError(claim.reason)
    if claim.outcome == "skip":
        log.info("job %s: skipped (%s)", job_id, claim.reason)
        return Outcome("skipped", claim.reason)
    attempt = claim.attempt
    log.info("job %s: attempt %d on %s pid %d", job_id, attempt, host, pid)
    store = ArtifactStore(settings.artifacts)
    monitor = JobMonitor(db, job_id, attempt, poll_interval=settings.cancel_poll_interval,
                         heartbeat_interval=settings.heartbeat_interval)  # fmt: skip
    monitor.start()
    recorder: ArtifactRecorder | None = None
    samples: SampleWriter | None = None
    observer: DbObserver | None = None

    def finish(status: JobStatus, **data: Any) -> bool:
        """The final status, retried for ``db_final_retry_seconds``; raises DatabaseUnavailable past that."""
        return dbretry.write(db, lambda session: lifecycle.finish_job(
            session, job_id=job_id, attempt=attempt, status=status, **data),
            seconds=settings.db_final_retry_seconds, what=f"job {job_id}: final status")  # fmt: skip

    try:
        from models.hooks import Cancelled

        def read(session: Any) -> tuple[dict[str, Any], str, str, Path, str]:
            job = session.get(Job, job_id)
            assert job is not None
            dataset = session.get(Dataset, job.dataset_id) if job.dataset_id else None
            if dataset is None:
                raise LookupError("the job's dataset was deleted")
            return dict(job.spec), job.queue, job.out_dir, store.resolve(dataset.storage_path), dataset.name

        spec, queue, out_rel, data_path, dataset_name = dbretry.write(
            db, read, seconds=settings.db_retry_seconds, what=f"job {job_id}: read"
        )
        out_dir = store.root / out_rel
        out_dir.mkdir(parents=True, exist_ok=True)
        imageset = _load_imageset(data_path, dataset_name, spec.get("dataset_decode"))
        recorder = ArtifactRecorder(db, store, job_id, out_dir, retry_seconds=settings.db_retry_seconds)
        samples = SampleWriter(db, store, job_id, out_dir, imageset.train.images, imageset.train.labels,
                               imageset.num_classes, int(spec.get("samples_per_class") or 0))  # fmt: skip
        observer = DbObserver(db, job_id, attempt, imageset.class_names, monitor, recorder, samples,
                              settings.progress_interval, retry_seconds=settings.db_retry_seconds)  # fmt: skip
        try:
            from models.experiment import run_experiment

            results = run_experiment(imageset, experiment_spec(spec, queue, settings), out_dir, observer)
        except Cancelled:
            _wrap_up(recorder, samples, observer)
            finish(JobStatus.cancelled, reason=monitor.reason or "cancelled")
            return Outcome("cancelled", monitor.reason)

        def record_all(session: Any) -> None:
            for record in results.get("records", []):
                lifecycle.record_run(session, job_id=job_id, record=record, class_names=imageset.class_names,
                                     announce=False)  # fmt: skip

        dbretry.write(db, record_all, seconds=settings.db_final_retry_seconds, what=f"job {job_id}: results")
        _wrap_up(recorder, samples, observer)
        finish(JobStatus.succeeded)  # a cancel acknowledged meanwhile makes it "cancelled" (lifecycle.finish_job)
        return Outcome("succeeded")
    except Exception as exc:
        if dbretry.unavailable(exc):
            return _lost(job_id, exc)
        log.exception("job %s failed", job_id)
        if recorder is not None and samples is not None:
            _wrap_up(recorder, samples, observer)
        try:
            finish(JobStatus.failed, error=_error_text(exc))
        except Exception as final:
            if dbretry.unavailable(final):
                return _lost(job_id, final)
            raise
        return Outcome("failed", str(exc))
    finally:
        monitor.close()


def _lost(job_id: str, exc: BaseException) -> Outcome:
    """The job's bookkeeping could not reach the database for the whole retry window. The job is left as it is
    (``running``, this worker's pid and heartbeat): this delivery ends, its one-task process exits, and the
    sweep of any live worker re-queues the job because its worker is gone (:mod:`workers.sweep`)."""
    log.error("job %s: %s; leaving the job to the orphan sweep (it resumes from its checkpoints)",
              job_id, dbretry.first_line(exc))  # fmt: skip
    return Outcome("lost", dbretry.first_line(exc))


def _load_imageset(path: Path, name: str, decode: dict[str, Any] | None) -> Any:
    """The stored upload, with the decode choices the job's dataset had (for its results and report)."""
    from models.datasets import ImageSet, load_dataset

    loaded = load_dataset(path)
    return ImageSet(name, list(loaded.class_names), dict(loaded.splits), decode)


def _wrap_up(recorder: ArtifactRecorder, samples: SampleWriter, observer: DbObserver | None = None) -> None:
    """Register every artifact and sample the job produced (also after a cancel or an error); the real samples
    only once training had started (they are written then, and again here in case the database was away)."""
    steps = [samples.real_samples] if observer is not None and observer.trained else []
    for step in (*steps, samples.sweep, recorder.sweep):
        try:
            step()
        except Exception:
            log.warning("wrap-up step %s failed", step.__qualname__, exc_info=True)
