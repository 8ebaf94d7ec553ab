"""One delivery of one job: claim it, run (or resume) the experiment, record what it produced, close it.

The science is :func:`models.experiment.run_experiment`; its output folder is ``<artifact_root>/jobs/<id>``
on every attempt, so a redelivered job skips finished stages and resumes training from checkpoints.
"""

from __future__ import annotations

import logging
import os
import socket
import traceback
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from core.crud import lifecycle
from core.db.orm import Dataset, Job
from core.db.session import Database
from core.jobspec import with_server_settings
from core.jobstate import JobStatus
from core.settings import Settings
from core.storage import ArtifactStore
from models.spec import ExperimentSpec, spec_fields
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
    lines = traceback.format_exception(exc)
    tail = "".join(lines[-6:])
    return f"{type(exc).__name__}: {exc}\n\n{tail}"[:8000]


def execute(job_id: str, settings: Settings) -> Outcome:
    """Run one delivery of ``job_id``; raises :class:`JobBusyError` when another live worker holds it."""
    db = Database(settings.database_url)
    try:
        return _execute(db, job_id, settings)
    finally:
        db.dispose()


def _execute(db: Database, job_id: str, settings: Settings) -> Outcome:
    host, pid = socket.gethostname(), os.getpid()
    with db.session() as session:
        alive = partial(owner_alive, host=host, stale_after=settings.stale_after)
        claim = lifecycle.claim_job(session, job_id=job_id, host=host, pid=pid, owner_alive=alive)
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
    try:
        from models.hooks import Cancelled

        with db.session() as session:
            job = session.get(Job, job_id)
            assert job is not None
            spec, queue, out_rel = dict(job.spec), job.queue, job.out_dir
            dataset = session.get(Dataset, job.dataset_id) if job.dataset_id else None
            if dataset is None:
                raise LookupError("the job's dataset was deleted")
            data_path, dataset_name = store.resolve(dataset.storage_path), dataset.name
        out_dir = store.root / out_rel
        out_dir.mkdir(parents=True, exist_ok=True)
        imageset = _load_imageset(data_path, dataset_name)
        recorder = ArtifactRecorder(db, store, job_id, out_dir)
        samples = SampleWriter(db, store, job_id, out_dir, imageset.train.images, imageset.train.labels,
                               imageset.num_classes, int(spec.get("samples_per_class") or 0))  # fmt: skip
        samples.real_samples()
        observer = DbObserver(db, job_id, attempt, imageset.class_names, monitor, recorder, samples,
                              settings.progress_interval)  # fmt: skip
        try:
            from models.experiment import run_experiment

            results = run_experiment(imageset, experiment_spec(spec, queue, settings), out_dir, observer)
        except Cancelled:
            _wrap_up(recorder, samples)
            with db.session() as session:
                lifecycle.finish_job(session, job_id=job_id, attempt=attempt, status=JobStatus.cancelled,
                                     reason=monitor.reason or "cancelled")  # fmt: skip
            return Outcome("cancelled", monitor.reason)
        with db.session() as session:
            for record in results.get("records", []):
                lifecycle.record_run(session, job_id=job_id, record=record, class_names=imageset.class_names,
                                     announce=False)  # fmt: skip
        _wrap_up(recorder, samples)
        with db.session() as session:
            lifecycle.finish_job(session, job_id=job_id, attempt=attempt, status=JobStatus.succeeded)
        return Outcome("succeeded")
    except Exception as exc:
        log.exception("job %s failed", job_id)
        if recorder is not None and samples is not None:
            _wrap_up(recorder, samples)
        with db.session() as session:
            lifecycle.finish_job(session, job_id=job_id, attempt=attempt, status=JobStatus.failed,
                                 error=_error_text(exc))  # fmt: skip
        return Outcome("failed", str(exc))
    finally:
        monitor.close()


def _load_imageset(path: Path, name: str) -> Any:
    from models.datasets import ImageSet, load_dataset

    loaded = load_dataset(path)
    return ImageSet(name, list(loaded.class_names), dict(loaded.splits))


def _wrap_up(recorder: ArtifactRecorder, samples: SampleWriter) -> None:
    """Register every artifact and sample the job produced (also after a cancel or an error)."""
    for step in (samples.sweep, recorder.sweep):
        try:
            step()
        except Exception:
            log.warning("wrap-up step %s failed", step.__qualname__, exc_info=True)
