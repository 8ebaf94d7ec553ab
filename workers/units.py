"""One unit of a job (:mod:`models.units`) on this worker: its monitor, its observer, and one run of it.

Both the job's coordinator (:mod:`workers.delivery`, which runs units itself while it waits) and any worker
that takes a ``genmix.run_unit`` message run a unit through :func:`run_unit`. A unit's outputs are files
written atomically under the job's folder (the artifact root is shared by every machine), so a unit only
ever reads its dependencies' finished files.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.crud import lifecycle
from core.crud import units as unit_crud
from core.db.faults import database_unavailable
from core.db.orm import Dataset, Job
from core.db.session import Database
from core.joberrors import public_error
from core.jobspec import with_server_settings
from core.queue import enqueue_unit, revoke_messages
from core.settings import Settings
from core.storage import ArtifactStore
from models.spec import ExperimentSpec, spec_fields
from workers import dbretry
from workers.artifacts import ArtifactRecorder
from workers.monitor import JobMonitor
from workers.observer import DbObserver
from workers.samples import SampleWriter

log = logging.getLogger("genmix.worker")


def this_host() -> str:
    return socket.gethostname()


def experiment_spec(stored: dict[str, Any], queue: str, settings: Settings) -> ExperimentSpec:
    """The job's stored spec (validated at the door, read back through the same model) as this worker runs it."""
    return with_server_settings(ExperimentSpec.model_validate(spec_fields(stored)), settings, queue)


def load_imageset(path: Path, name: str, decode: dict[str, Any] | None) -> Any:
    """The stored upload, with the decode choices the job's dataset had (for its results and report)."""
    from models.datasets import ImageSet, load_dataset

    loaded = load_dataset(path)
    return ImageSet(name, list(loaded.class_names), dict(loaded.splits), decode)


class UnitMonitor(threading.Thread):
    """Heartbeat of one running unit, and whether it must stop: a cancel, a failed sibling unit, the job
    finished, or another delivery took the unit over. Read every ``poll_interval`` s; the training loops
    only test :attr:`stop_requested`."""

    def __init__(self, db: Database, job_id: str, key: str, attempt: int, *, poll_interval: float) -> None:
        super().__init__(name=f"genmix-unit-{job_id[:8]}-{key[:24]}", daemon=True)
        self.db, self.job_id, self.key, self.attempt = db, job_id, key, attempt
        self.poll_interval = poll_interval
        self.stop_requested = threading.Event()
        self.reason = ""
        self._closing = threading.Event()

    def run(self) -> None:
        while not self._closing.wait(self.poll_interval):
            try:
                with self.db.session() as session:
                    reason = unit_crud.heartbeat_unit(session, job_id=self.job_id, key=self.key, attempt=self.attempt)
            except Exception as exc:  # an outage must not kill the unit; the next tick tries again
                if not database_unavailable(exc):
                    log.warning("job %s unit %s: heartbeat failed", self.job_id, self.key, exc_info=True)
                continue
            if reason and not self.stop_requested.is_set():
                self.reason = reason
                self.stop_requested.set()
                log.info("job %s unit %s: stopping (%s)", self.job_id, self.key, reason)

    def close(self) -> None:
        self._closing.set()
        if self.is_alive():
            self.join(timeout=5)


class _Either:
    """The stop flag of a unit the coordinator runs: its job's monitor or its own."""

    def __init__(self, *monitors: Any) -> None:
        self.monitors = monitors

    @property
    def stop_requested(self) -> Any:
        return self

    def is_set(self) -> bool:
        return any(m.stop_requested.is_set() for m in self.monitors)


class UnitObserver(DbObserver):
    """The observer of one unit: progress and resumes go to the unit's row; the coordinator's own units
    (``job_level``) also write the job's stage and progress as a one-worker job always did."""

    def __init__(self, *args: Any, key: str, unit_attempt: int, job_level: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key = key
        self.unit_attempt = unit_attempt
        self.job_level = job_level
        self._unit_last = 0.0
        self._unit_first: tuple[int, float] | None = None

    def stage(self, name: str, index: int, count: int) -> None:
        self._unit_first = None
        if self.job_level:
            super().stage(name, index, count)
        else:
            self._stage = name

    def resumed(self, step: int, total: int) -> None:
        self._write("unit resumed", lambda session: unit_crud.unit_resumed(
            session, job_id=self.job_id, key=self.key, attempt=self.unit_attempt, step=step))  # fmt: skip
        data = {"stage": self._stage, "step": step, "total": total, "attempt": self.attempt, "unit": self.key,
                "unit_attempt": self.unit_attempt, "host": this_host()}  # fmt: skip
        self._write("resumed event", lambda session: lifecycle.add_job_event(
            session, job_id=self.job_id, kind="resumed", data=data))  # fmt: skip

    def progress(self, step: int, total: int, metrics: dict[str, float]) -> None:
        if self.job_level:
            super().progress(step, total, metrics)
        now = time.monotonic()
        if self._unit_first is None:
            self._unit_first = (step, now)
        if now - self._unit_last < self.progress_interval and step < total:
            return
        self._unit_last = now
        first_step, started = self._unit_first
        eta = (now - started) / (step - first_step) * (total - step) if step > first_step else None
        try:
            with self.db.session() as session:
                unit_crud.unit_progress(session, job_id=self.job_id, key=self.key, attempt=self.unit_attempt,
                                        step=step, total=total, eta_seconds=eta)  # fmt: skip
        except Exception as exc:  # progress is optional: keep training through an outage
            if not database_unavailable(exc):
                raise


@dataclass
class JobContext:
    """What every unit of one job needs on this worker: the job's data and its writers."""

    job_id: str
    attempt: int
    queue: str
    spec: ExperimentSpec
    imageset: Any
    out_dir: Path
    recorder: ArtifactRecorder
    samples: SampleWriter
    extends: tuple[str, Path] | None = None  # the ended job this one extends, and its folder


def load_context(db: Database, settings: Settings, job_id: str, attempt: int) -> JobContext:
    """Read the job and its dataset (retrying an unreachable database) and build its writers."""
    store = ArtifactStore(settings.artifacts)

    def read(session: Any) -> tuple[dict[str, Any], str, str, Path, str, tuple[str, Path] | None]:
        job = session.get(Job, job_id)
        assert job is not None
        dataset = session.get(Dataset, job.dataset_id) if job.dataset_id else None
        if dataset is None:
            raise LookupError("the job's dataset was deleted")
        extends = None
        if job.spec.get("extends"):
            parent = session.get(Job, job.spec["extends"])
            if parent is None:
                raise LookupError(f"job {job.spec['extends']}, which this job extends, was deleted")
            extends = (parent.id, store.root / parent.out_dir)
        return dict(job.spec), job.queue, job.out_dir, store.resolve(dataset.storage_path), dataset.name, extends

    spec, queue, out_rel, data_path, dataset_name, extends = dbretry.write(
        db, read, seconds=settings.db_retry_seconds, what=f"job {job_id}: read"
    )
    out_dir = store.root / out_rel
    out_dir.mkdir(parents=True, exist_ok=True)
    imageset = load_imageset(data_path, dataset_name, spec.get("dataset_decode"))
    recorder = ArtifactRecorder(db, store, job_id, out_dir, retry_seconds=settings.db_retry_seconds)
    samples = SampleWriter(db, store, job_id, out_dir, imageset.train.images, imageset.train.labels,
                           imageset.num_classes, int(spec.get("samples_per_class") or 0))  # fmt: skip
    return JobContext(job_id, attempt, queue, experiment_spec(spec, queue, settings), imageset, out_dir, recorder,
                      samples, extends)  # fmt: skip


def publish_ready(db: Database, settings: Settings, job_id: str, queue: str) -> list[str]:
    """Publish every unit of the job that became ready and has no message yet; returns their keys."""
    marked = dbretry.write(db, lambda session: unit_crud.mark_enqueued(session, job_id=job_id),
                           seconds=settings.db_retry_seconds, what=f"job {job_id}: publish units")  # fmt: skip
    for key, message_id in marked:
        try:
            enqueue_unit(settings, job_id=job_id, key=key, queue=queue, message_id=message_id)
        except Exception:  # the coordinator takes a unit nobody else took; the message is a convenience
            log.warning("job %s: could not publish unit %s", job_id, key, exc_info=True)
    return [key for key, _ in marked]


def revoke(settings: Settings, job_id: str, message_ids: list[str | None]) -> None:
    """Revoke unit messages nobody needs any more (best effort: a stale message is dropped by its claim)."""
    ids = [i for i in message_ids if i]
    try:
        revoke_messages(settings, ids)
    except Exception:
        log.warning("job %s: could not revoke %d unit message(s)", job_id, len(ids), exc_info=True)


@dataclass(frozen=True)
class UnitOutcome:
    status: str  # succeeded, failed, cancelled, stopped (another delivery took it over), lost
    error: str = ""


def run_unit(db: Database, settings: Settings, ctx: JobContext, key: str, unit_attempt: int, *,
             job_monitor: JobMonitor | None = None) -> UnitOutcome:  # fmt: skip
    """Run one claimed unit here and record how it ended; ``job_monitor``: this is the coordinator's own unit.

    A unit stopped by a cancel or by a failed sibling is ``cancelled`` (a redelivered job runs it again,
    from its checkpoint); one that raised, also before its run started (its runner could not be built), is
    ``failed`` with its error, which fails the job. ``lost``: the database stayed out of reach, so the unit is
    left ``running`` under this process (this process must end: :func:`workers.liveness.unit_alive`)."""
    from models.experiment import ExperimentRunner
    from models.hooks import Cancelled

    monitor = UnitMonitor(db, ctx.job_id, key, unit_attempt, poll_interval=settings.cancel_poll_interval)
    monitor.start()
    stop = _Either(monitor, job_monitor) if job_monitor is not None else _Either(monitor)
    observer = UnitObserver(db, ctx.job_id, ctx.attempt, ctx.imageset.class_names, stop, ctx.recorder, ctx.samples,
                            settings.progress_interval, retry_seconds=settings.db_retry_seconds, key=key,
                            unit_attempt=unit_attempt, job_level=job_monitor is not None)  # fmt: skip

    def finish(status: str, error: str | None = None) -> bool:
        return dbretry.write(db, lambda session: unit_crud.finish_unit(
            session, job_id=ctx.job_id, key=key, attempt=unit_attempt, status=status, error=error),
            seconds=settings.db_final_retry_seconds, what=f"job {ctx.job_id}: unit {key}")  # fmt: skip

    started = time.monotonic()
    try:
        runner = ExperimentRunner(ctx.imageset, ctx.spec, ctx.out_dir, observer)
        unit = next(u for u in runner.units() if u.key == key)
        if job_monitor is not None:
            # The job's stage index counts finished units, so the job's progress only goes forward however the
            # units were shared out; one worker finishes them in order, so there it is the unit's own index.
            done = dbretry.write(db, lambda session: unit_crud.counts(session, ctx.job_id).get(unit_crud.SUCCEEDED, 0),
                                 seconds=settings.db_retry_seconds, what=f"job {ctx.job_id}: unit counts")  # fmt: skip
            unit = unit._replace(index=done)
        try:
            runner.run_unit(unit)
        except Cancelled:
            reason = monitor.reason or (job_monitor.reason if job_monitor is not None else "") or "stopped"
            if "took the unit over" in reason:
                return UnitOutcome("stopped", reason)
            # A cancel ends the unit "cancelled"; any other stop (a failed sibling, the job taken over by a new
            # delivery) gives it back to the queue, to be resumed from its checkpoint.
            cancelled = reason.startswith("cancelled")
            finish(unit_crud.CANCELLED if cancelled else unit_crud.QUEUED, reason)
            return UnitOutcome("cancelled" if cancelled else "stopped", reason)
        except Exception as exc:
            if dbretry.unavailable(exc):
                raise
            log.exception("job %s unit %s failed", ctx.job_id, key)
            error = public_error(exc)
            finish(unit_crud.FAILED, error)
            return UnitOutcome("failed", error)
        monitor.close()  # before the status moves on, so its last heartbeat does not read as a takeover
        finish(unit_crud.SUCCEEDED)
        log.info("job %s unit %s: succeeded in %.1f s", ctx.job_id, key, time.monotonic() - started)
        if job_monitor is None:  # the coordinator publishes from its loop, after taking its own next unit
            publish_ready(db, settings, ctx.job_id, ctx.queue)
        return UnitOutcome("succeeded")
    except Exception as exc:
        if dbretry.unavailable(exc):  # left running: re-queued once this process has ended (or its heartbeat is stale)
            log.error("job %s unit %s: %s", ctx.job_id, key, dbretry.first_line(exc))
            return UnitOutcome("lost", dbretry.first_line(exc))
        # Raised outside the unit's run (building its runner, say): fail the unit rather than leave it running.
        log.exception("job %s unit %s failed", ctx.job_id, key)
        error = public_error(exc)
        try:
            recorded = finish(unit_crud.FAILED, error)
        except Exception as final:
            if dbretry.unavailable(final):
                return UnitOutcome("lost", dbretry.first_line(final))
            raise
        if not recorded:  # it had already ended (or was taken over): nothing to record, the error stands
            raise
        return UnitOutcome("failed", error)
    finally:
        monitor.close()


def _claim_any(session: Any, job_id: str) -> tuple[str, unit_crud.UnitClaim] | None:
    """Claim the first ready unit of the job that nobody has claimed, if any."""
    for unit in unit_crud.ready_units(session, job_id):
        claim = unit_crud.claim_unit(session, job_id=job_id, key=unit.key, host=this_host(), pid=os.getpid())
        if claim.outcome == "run":
            return unit.key, claim
        if not claim.open:
            return None
    return None


def execute_unit(job_id: str, key: str, settings: Settings) -> str:
    """One delivery of a ``genmix.run_unit`` message: claim the unit (or, when it was taken, another ready unit
    of the job) and run it, then the job's next ready units while there are any; or drop the message (nothing
    of the job is ready, or the job is over: its coordinator has the whole picture)."""
    db = Database(settings.database_url)
    try:
        try:
            claim = dbretry.write(db, lambda session: unit_crud.claim_unit(
                session, job_id=job_id, key=key, host=this_host(), pid=os.getpid()),
                seconds=settings.db_retry_seconds, what=f"job {job_id}: claim unit {key}")  # fmt: skip
            if claim.outcome != "run" and claim.open:
                # Its unit was taken (by the coordinator, most often): take another ready unit of the job
                # instead of dropping the message, so a worker never idles while the job has work.
                taken = dbretry.write(db, lambda session: _claim_any(session, job_id),
                                      seconds=settings.db_retry_seconds, what=f"job {job_id}: a unit")  # fmt: skip
                if taken is not None:
                    log.info("job %s unit %s: %s; took unit %s instead", job_id, key, claim.reason, taken[0])
                    key, claim = taken
                    revoke(settings, job_id, [claim.message_id])  # that unit's own message is stale now
        except dbretry.DatabaseUnavailable:
            return "skipped"
        if claim.outcome != "run":
            log.info("job %s unit %s: skipped (%s)", job_id, key, claim.reason)
            return "skipped"
        with db.session() as session:
            job = session.get(Job, job_id)
            attempt = job.attempts if job is not None else 0
        try:
            ctx = load_context(db, settings, job_id, attempt)
        except Exception as exc:
            if dbretry.unavailable(exc):
                return "lost"
            log.exception("job %s unit %s: could not load the job", job_id, key)
            error = public_error(exc)
            dbretry.write(db, lambda session: unit_crud.finish_unit(
                session, job_id=job_id, key=key, attempt=claim.attempt, status=unit_crud.FAILED,
                error=error), seconds=settings.db_final_retry_seconds, what="unit")  # fmt: skip
            return "failed"
        # Run it, then go on with the job's next ready unit in this process while there is one (a worker that
        # joined a job keeps at it as the coordinator does, without a message and a pool process per unit).
        while True:
            log.info("job %s unit %s: attempt %d on %s pid %d", job_id, key, claim.attempt, this_host(), os.getpid())
            status = run_unit(db, settings, ctx, key, claim.attempt).status
            if status != "succeeded":
                return status
            try:
                taken = dbretry.write(db, lambda session: _claim_any(session, job_id),
                                      seconds=settings.db_retry_seconds, what=f"job {job_id}: a unit")  # fmt: skip
            except dbretry.DatabaseUnavailable:
                return status
            if taken is None:
                return status
            key, claim = taken
            revoke(settings, job_id, [claim.message_id])
    finally:
        db.dispose()
