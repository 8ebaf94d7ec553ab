"""The sweep every live worker runs when it starts and then every ``sweep_interval`` seconds (a process of its
own beside the worker, :class:`SweepProcess`, so it runs while the worker's children train): the database is the
source of truth for which jobs must run, the broker only carries them.

* A ``running`` job whose worker is gone (same host: its pid is dead; another host: its heartbeat is older
  than ``stale_after``) is published again: a worker killed outright (its message stays unacknowledged in
  Redis until the visibility timeout), a job whose bookkeeping lost the database (:mod:`workers.dbretry`), a
  filesystem-broker message lost in a crash.
* A ``queued`` job older than ``requeue_queued_after`` that the broker holds no message for is published
  again: a Redis restart without persistence, a ``POST /jobs`` during a broker outage.

A job is skipped while the broker holds a message for it (waiting in a queue, or handed to a consumer less
than ``sweep_interval`` seconds ago for a running job, ``stale_after`` for a queued one), so sweeps do not pile
messages up. Publishing twice is harmless anyway:
the claim in :mod:`core.crud.lifecycle` (a compare-and-set on ``attempts``) lets one delivery run the job, and
the attempt cap still applies. Each publish logs a ``requeued`` event on the job.

Bounds (defaults): a dead worker's job is published again within ``sweep_interval`` (30 s) on its own host
and within ``stale_after + sweep_interval`` (150 s) from another host; a lost queued job within
``requeue_queued_after + sweep_interval`` (90 s) of its creation, or of the broker coming back.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select

from core.crud.events import add_event
from core.db.base import utcnow
from core.db.orm import Job
from core.db.session import Database
from core.janitor import remove_stale_files
from core.jobstate import JobStatus
from core.queue import BrokerView, broker_view, enqueue_job
from core.settings import Settings, get_settings
from workers.liveness import owner_alive

log = logging.getLogger("genmix.worker")


def _reason(job: Job, view: BrokerView | None, host: str, settings: Settings, now: datetime) -> str | None:
    """Why ``job`` must be published again, or None."""
    running = job.status == JobStatus.running.value
    if view is not None:
        # A message handed to a consumer is on its way: a redelivery is claimed within seconds, a queued job's
        # first delivery may wait for a pool process to start. An older one belongs to a consumer that died.
        recent = settings.sweep_interval if running else max(settings.sweep_interval, settings.stale_after)
        if job.id in view.waiting or view.delivered.get(job.id, float("inf")) < recent:
            return None
    if running:
        if owner_alive(job, host=host, stale_after=settings.stale_after, now=now):
            return None
        return "its worker is gone"
    if view is None:
        return None  # a transport we cannot read: a queued job may well have its message
    return "the broker holds no message for it"


def sweep(settings: Settings, db: Database | None = None) -> list[str]:
    """One sweep: publish every job that must run and has no message; returns their ids."""
    host = socket.gethostname()
    own = db is None
    db = db or Database(settings.database_url)
    published: list[str] = []
    try:
        try:
            view: BrokerView | None = broker_view(settings)
        except NotImplementedError:
            view = None
        with db.session() as session:
            now = utcnow()
            old = now - timedelta(seconds=settings.requeue_queued_after)
            jobs = session.scalars(
                select(Job).where(or_(Job.status == JobStatus.running.value,
                                      and_(Job.status == JobStatus.queued.value, Job.created_at <= old)))
            ).all()  # fmt: skip
            for job in jobs:
                reason = _reason(job, view, host, settings, now)
                if reason is None:
                    continue
                enqueue_job(settings, job_id=job.id, queue=job.queue)
                add_event(session, job_id=job.id, kind="requeued",
                          data={"reason": reason, "status": job.status, "previous_host": job.worker_host,
                                "previous_pid": job.worker_pid})  # fmt: skip
                session.commit()
                published.append(job.id)
                log.warning("job %s (%s): %s; published it again", job.id, job.status, reason)
            remove_stale_files(settings, session)
    finally:
        if own:
            db.dispose()
    return published


class Sweeper:
    """Runs :func:`sweep` now and every ``settings.sweep_interval`` seconds, logging an outage once."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._failing = False

    def run_while(self, keep_going: Callable[[], bool]) -> None:
        """Sweep now, then every interval while ``keep_going()``."""
        requeued = self.once()
        if requeued:
            log.warning("re-queued %d orphaned or lost job(s): %s", len(requeued), ", ".join(requeued))
        while keep_going():
            time.sleep(self.settings.sweep_interval)
            if keep_going():
                self.once()

    def once(self) -> list[str]:
        try:
            published = sweep(self.settings)
        except Exception as exc:  # the database or the broker is down: the next sweep tries again
            if not self._failing:
                self._failing = True
                first = (str(exc).strip().splitlines() or [""])[0]
                log.warning("the sweep for orphaned and lost jobs failed (%s: %s); retrying every %.0f s",
                            type(exc).__name__, first, self.settings.sweep_interval)  # fmt: skip
            return []
        if self._failing:
            self._failing = False
            log.info("the sweep for orphaned and lost jobs works again")
        return published


def _sweep_for(worker_pid: int, log_level: int) -> None:
    """The sweep process's body: sweep until the worker that started it is gone (stopped, or killed outright)."""
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    Sweeper(get_settings()).run_while(lambda: os.getppid() == worker_pid)


class SweepProcess:
    """The sweep in a process of its own (``python -m workers.sweep``), started beside a Celery worker.

    Not a thread of the worker's parent: that process forks a pool child for every task, and a child forked
    while a sweep thread held a lock inside SQLite or the broker client inherits the lock held by nobody and
    hangs on its first database call (seen: an embedded worker's child stuck for minutes on a message it only
    had to drop). A separate interpreter shares no locks with the worker, stops with it, and exits on its own
    if the worker dies."""

    def __init__(self) -> None:
        self.command = [sys.executable, "-m", "workers.sweep", str(os.getpid()),
                        str(logging.getLogger().getEffectiveLevel())]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.command)

    def stop(self, timeout: float = 5.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)


if __name__ == "__main__":
    _sweep_for(int(sys.argv[1]), int(sys.argv[2]))
