"""Database writes of a running job that survive a restart or a short outage of the database.

A job's bookkeeping (its stage, results, artifacts, final status) is retried with exponential backoff for as
long as the settings allow (``db_retry_seconds``; the final status ``db_final_retry_seconds``) while training
goes on; progress writes are not retried, only skipped until the database answers again. When time runs out
:class:`DatabaseUnavailable` is raised: the delivery then leaves the job as it is (``running``, with this
worker's pid) and ends; its process exits, and the sweep of a live worker re-queues the job because its worker
is gone (:mod:`workers.sweep`), so a job whose bookkeeping failed is never left ``running``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.orm import Session

from core.db.faults import database_unavailable
from core.db.session import Database

log = logging.getLogger("genmix.worker")
T = TypeVar("T")
FIRST_DELAY = 0.2
MAX_DELAY = 5.0


class DatabaseUnavailable(Exception):
    """The database stayed unreachable for the whole retry window of a write."""


def first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def retry_db(fn: Callable[[], T], *, seconds: float, what: str) -> T:
    """``fn()``, retried with backoff (0.2 s doubling to 5 s) while the database is unreachable, for up to
    ``seconds``; any other error is raised at once."""
    deadline = time.monotonic() + seconds
    delay, failures = FIRST_DELAY, 0
    while True:
        try:
            result = fn()
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            failures += 1
            if time.monotonic() + delay > deadline:
                reason = first_line(exc)
                raise DatabaseUnavailable(
                    f"{what}: the database stayed unreachable for {seconds:.0f} s ({reason})"
                ) from exc
            if failures == 1:
                log.warning("%s: the database is unreachable (%s); retrying for up to %.0f s",
                            what, first_line(exc), seconds)  # fmt: skip
            time.sleep(delay)
            delay = min(delay * 2, MAX_DELAY)
            continue
        if failures:
            log.info("%s: the database answers again (after %d failed tries)", what, failures)
        return result


def write(db: Database, fn: Callable[[Session], T], *, seconds: float, what: str) -> T:
    """``fn(session)`` in a fresh session per try (a failed try's session is rolled back and closed)."""

    def once() -> T:
        with db.session() as session:
            return fn(session)

    return retry_db(once, seconds=seconds, what=what)


def unavailable(error: BaseException) -> bool:
    """The delivery's question: did this error come from the database being out of reach?"""
    return isinstance(error, DatabaseUnavailable) or database_unavailable(error)
