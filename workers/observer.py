"""The :class:`models.experiment.Observer` of a service job: all the pipeline reports goes to the database.

Progress writes are throttled (``progress_interval``) and carry an ETA for the current stage; cancellation is
an Event set by :class:`workers.monitor.JobMonitor`. A stage whose training picks up from a checkpoint (a
redelivered job) is logged as a ``resumed`` event with the step it started from; a stage that starts fresh
logs none. The real training samples are materialised when training first reports progress, so a job that
fails before it trains anything writes no sample PNGs.

The database may restart or be down for a while: stage, result and artifact writes retry for
``db_retry_seconds`` (:mod:`workers.dbretry`) and progress writes are skipped meanwhile, so training goes on.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from core.crud import lifecycle
from core.db.faults import database_unavailable
from core.db.session import Database
from workers import dbretry
from workers.artifacts import ArtifactRecorder
from workers.monitor import JobMonitor
from workers.samples import SampleWriter

log = logging.getLogger("genmix.worker")


class DbObserver:
    def __init__(
        self,
        db: Database,
        job_id: str,
        attempt: int,
        class_names: list[str],
        monitor: JobMonitor,
        artifacts: ArtifactRecorder,
        samples: SampleWriter,
        progress_interval: float,
        retry_seconds: float = 60.0,
    ) -> None:
        self.db = db
        self.job_id = job_id
        self.attempt = attempt
        self.class_names = class_names
        self.monitor = monitor
        self.artifacts = artifacts
        self.samples = samples
        self.progress_interval = progress_interval
        self.retry_seconds = retry_seconds
        self._stage = ""
        self._first: tuple[int, float] | None = None
        self._last_write = 0.0
        self._trained = False
        self._progress_down = False

    def _write(self, what: str, fn: Any) -> Any:
        """``fn(session)``, retried while the database is unreachable (see :mod:`workers.dbretry`)."""
        return dbretry.write(self.db, fn, seconds=self.retry_seconds, what=f"job {self.job_id}: {what}")

    def stage(self, name: str, index: int, count: int) -> None:
        self._stage = name
        self._first = None
        self._last_write = 0.0
        self._write(f"stage {name!r}", lambda session: lifecycle.set_stage(
            session, job_id=self.job_id, attempt=self.attempt, name=name, index=index, count=count))  # fmt: skip

    def resumed(self, step: int, total: int) -> None:
        """Training of the current stage picked up from a checkpoint at ``step``."""
        data = {"stage": self._stage, "step": step, "total": total, "attempt": self.attempt}
        self._write("resumed event", lambda session: lifecycle.add_job_event(
            session, job_id=self.job_id, kind="resumed", data=data))  # fmt: skip

    def progress(self, step: int, total: int, metrics: dict[str, float]) -> None:
        now = time.monotonic()
        if not self._trained:
            self._trained = True
            self._real_samples()
        if self._first is None:
            self._first = (step, now)
        if now - self._last_write < self.progress_interval and step < total:
            return
        self._last_write = now
        first_step, started = self._first
        eta = (now - started) / (step - first_step) * (total - step) if step > first_step else None
        clean = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
        try:
            with self.db.session() as session:
                lifecycle.set_progress(session, job_id=self.job_id, attempt=self.attempt, step=step, total=total,
                                       eta_seconds=eta, metrics=clean)  # fmt: skip
        except Exception as exc:  # progress is the one write a job can do without: skip it, keep training
            if not database_unavailable(exc):
                raise
            if not self._progress_down:
                self._progress_down = True
                log.warning("job %s: the database is unreachable; training goes on without progress writes "
                            "(%s)", self.job_id, dbretry.first_line(exc))  # fmt: skip
            return
        if self._progress_down:
            self._progress_down = False
            log.info("job %s: progress writes resumed", self.job_id)

    def _real_samples(self) -> None:
        try:
            self.samples.real_samples()
        except Exception:  # samples are a convenience: never fail a job over one (the final sweep tries again)
            log.warning("job %s: could not materialise the real samples", self.job_id, exc_info=True)

    @property
    def trained(self) -> bool:
        """Whether training has reported progress yet (before that, the job has produced nothing to show)."""
        return self._trained

    def should_stop(self) -> bool:
        return self.monitor.stop_requested.is_set()

    def run_finished(self, record: dict[str, Any]) -> None:
        self._write(f"run {record.get('run_id')}", lambda session: lifecycle.record_run(
            session, job_id=self.job_id, record=record, class_names=self.class_names))  # fmt: skip

    def artifact(self, kind: str, path: Path, meta: dict[str, Any]) -> None:
        self.artifacts.record(kind, Path(path), meta)
        try:
            if kind == "synthetic":
                self.samples.from_synthetic(Path(path))
            elif kind == "genmix_export":
                self.samples.from_export(Path(path))
        except Exception:  # samples are a convenience: never fail a job over one
            log.warning("job %s: could not materialise samples from %s", self.job_id, path, exc_info=True)
