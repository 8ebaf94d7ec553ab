"""Re-queue jobs whose worker died and whose message is gone (the filesystem broker loses in-flight messages).

A job counts as orphaned when it is ``running`` but its owner is dead: same host and its pid is gone, or
another host and its heartbeat is older than ``stale_after``. Publishing it again is safe: the claim in
:mod:`core.crud.lifecycle` lets only one delivery run, and the attempt cap still applies.
"""

from __future__ import annotations

import socket

from sqlalchemy import select

from core.crud.events import add_event
from core.db.base import utcnow
from core.db.orm import Job
from core.db.session import Database
from core.jobstate import JobStatus
from core.queue import enqueue_job
from core.settings import Settings
from workers.liveness import owner_alive


def recover_orphans(settings: Settings) -> list[str]:
    host = socket.gethostname()
    db = Database(settings.database_url)
    requeued: list[str] = []
    try:
        with db.session() as session:
            now = utcnow()
            running = session.scalars(select(Job).where(Job.status == JobStatus.running.value)).all()
            for job in running:
                if owner_alive(job, host=host, stale_after=settings.stale_after, now=now):
                    continue
                add_event(session, job_id=job.id, kind="requeued",
                          data={"reason": "its worker is gone", "previous_host": job.worker_host,
                                "previous_pid": job.worker_pid})  # fmt: skip
                session.commit()
                enqueue_job(settings, job_id=job.id, queue=job.queue)
                requeued.append(job.id)
    finally:
        db.dispose()
    return requeued
