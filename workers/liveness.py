"""Whether the worker recorded on a running job is still at it: its process on this host, else its heartbeat.

Process checks read ``/proc``, which is a fact about this machine, so they live with the workers and not in
the database layer; the claim and the orphan sweep both ask :func:`owner_alive`.
"""

from __future__ import annotations

import os
from collections.abc import Container
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from core.db.base import utcnow


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists on this host and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


class Owned(Protocol):
    """A job or a job unit: who runs it, and when it last said so."""

    @property
    def worker_host(self) -> str | None: ...
    @property
    def worker_pid(self) -> int | None: ...
    @property
    def heartbeat_at(self) -> datetime | None: ...


def owner_alive(job: Owned, *, host: str, stale_after: float, now: datetime | None = None) -> bool:
    """Same host: is its pid alive? Another host: is its heartbeat younger than ``stale_after`` seconds?"""
    if job.worker_host == host and job.worker_pid is not None:
        return pid_alive(job.worker_pid)
    if job.heartbeat_at is None:
        return False
    return (now or utcnow()) - job.heartbeat_at < timedelta(seconds=stale_after)


class OwnedUnit(Owned, Protocol):
    @property
    def key(self) -> str: ...


def unit_alive(unit: OwnedUnit, *, host: str, pid: int, stale_after: float, running_here: Container[str] = (),
               now: datetime | None = None) -> bool:  # fmt: skip
    """:func:`owner_alive` for a unit, asked by the process ``pid`` on ``host``: a unit recorded under this very
    process is alive only while this process runs it (``running_here``): one it gave up on (its run ended
    without a final status, e.g. the database was out of reach) is not, though the pid is."""
    if unit.worker_host == host and unit.worker_pid == pid:
        return unit.key in running_here
    return owner_alive(unit, host=host, stale_after=stale_after, now=now)
