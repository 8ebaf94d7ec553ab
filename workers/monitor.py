"""A background thread per running job: heartbeat, cancel flag, lease.

Training loops call ``should_stop()`` every step; reading the database that often would be waste, so this
thread reads the cancel flag once per ``cancel_poll_interval`` and the loops only test an Event.
"""

from __future__ import annotations

import logging
import threading
import time

from core.crud import lifecycle
from core.db.faults import database_unavailable
from core.db.session import Database

log = logging.getLogger("genmix.worker")


class JobMonitor(threading.Thread):
    def __init__(
        self, db: Database, job_id: str, attempt: int, *, poll_interval: float, heartbeat_interval: float
    ) -> None:
        super().__init__(name=f"genmix-monitor-{job_id[:8]}", daemon=True)
        self.db = db
        self.job_id = job_id
        self.attempt = attempt
        self.poll_interval = poll_interval
        self.heartbeat_interval = heartbeat_interval
        self.stop_requested = threading.Event()
        self.reason = ""
        self.taken_over = False
        """Another delivery took the job over (or it ended elsewhere): this delivery must write nothing more."""
        self._closing = threading.Event()
        self._last_beat = 0.0

    def run(self) -> None:
        failing = False
        while not self._closing.wait(self.poll_interval):
            try:
                self.tick()
            except Exception as exc:  # a database outage must not kill the job; the next tick tries again
                if not failing:
                    failing = True
                    unreachable = database_unavailable(exc)
                    log.warning("job %s: heartbeat and cancel checks fail%s; retrying every %.1f s", self.job_id,
                                " (the database is unreachable)" if unreachable else "", self.poll_interval,
                                exc_info=not unreachable)  # fmt: skip
                continue
            if failing:
                failing = False
                log.info("job %s: heartbeat and cancel checks work again", self.job_id)

    def tick(self) -> None:
        with self.db.session() as session:
            if time.monotonic() - self._last_beat >= self.heartbeat_interval:
                ours, cancel = lifecycle.heartbeat(session, job_id=self.job_id, attempt=self.attempt)
                self._last_beat = time.monotonic()
                if not ours:
                    self.taken_over = True
                    self._request_stop("another delivery took the job over")
                    return
            else:
                cancel = lifecycle.cancel_requested(session, job_id=self.job_id)
        if cancel:
            self._request_stop("cancelled by request")

    def _request_stop(self, reason: str) -> None:
        if not self.stop_requested.is_set():
            self.reason = reason
            self.stop_requested.set()
            log.info("job %s: stopping (%s)", self.job_id, reason)

    def close(self) -> None:
        self._closing.set()
        if self.is_alive():
            self.join(timeout=5)
