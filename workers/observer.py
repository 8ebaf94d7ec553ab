"""The :class:`models.experiment.Observer` of a service job: all the pipeline reports goes to the database.

Progress writes are throttled (``progress_interval``) and carry an ETA for the current stage; cancellation is
an Event set by :class:`workers.monitor.JobMonitor`. On a redelivered job, the first progress of each stage
is logged as a ``resumed`` event, showing the step training picked up from.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from core.crud import lifecycle
from core.db.session import Database
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
    ) -> None:
        self.db = db
        self.job_id = job_id
        self.attempt = attempt
        self.class_names = class_names
        self.monitor = monitor
        self.artifacts = artifacts
        self.samples = samples
        self.progress_interval = progress_interval
        self._stage = ""
        self._first: tuple[int, float] | None = None
        self._last_write = 0.0

    def stage(self, name: str, index: int, count: int) -> None:
        self._stage = name
        self._first = None
        self._last_write = 0.0
        with self.db.session() as session:
            lifecycle.set_stage(session, job_id=self.job_id, attempt=self.attempt, name=name, index=index, count=count)

    def progress(self, step: int, total: int, metrics: dict[str, float]) -> None:
        now = time.monotonic()
        if self._first is None:
            self._first = (step, now)
            if self.attempt > 1:
                with self.db.session() as session:
                    lifecycle.add_job_event(session, job_id=self.job_id, kind="resumed",
                                            data={"stage": self._stage, "step": step, "total": total,
                                                  "attempt": self.attempt})  # fmt: skip
        if now - self._last_write < self.progress_interval and step < total:
            return
        self._last_write = now
        first_step, started = self._first
        eta = (now - started) / (step - first_step) * (total - step) if step > first_step else None
        clean = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
        with self.db.session() as session:
            lifecycle.set_progress(session, job_id=self.job_id, attempt=self.attempt, step=step, total=total,
                                   eta_seconds=eta, metrics=clean)  # fmt: skip

    def should_stop(self) -> bool:
        return self.monitor.stop_requested.is_set()

    def run_finished(self, record: dict[str, Any]) -> None:
        with self.db.session() as session:
            lifecycle.record_run(session, job_id=self.job_id, record=record, class_names=self.class_names)

    def artifact(self, kind: str, path: Path, meta: dict[str, Any]) -> None:
        self.artifacts.record(kind, Path(path), meta)
        try:
            if kind == "synthetic":
                self.samples.from_synthetic(Path(path))
            elif kind == "genmix_export":
                self.samples.from_export(Path(path))
        except Exception:  # samples are a convenience: never fail a job over one
            log.warning("job %s: could not materialise samples from %s", self.job_id, path, exc_info=True)
