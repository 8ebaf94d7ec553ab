"""Thin Celery tasks: the message is a job id; :mod:`workers.delivery` does the work."""

from __future__ import annotations

import logging
from typing import Any

from core.queue import TASK_NAME
from workers.celery_app import celery_app, settings
from workers.delivery import JobBusyError, execute

log = logging.getLogger("genmix.worker")


@celery_app.task(name=TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def run_job(self: Any, job_id: str) -> str:
    """Run one delivery of a job. A job another live worker holds is looked at again later (the retry
    countdown stays well under the visibility timeout); everything else ends here, acknowledged."""
    from models.runtime import configure_threads

    configure_threads(settings.torch_threads)
    try:
        outcome = execute(job_id, settings)
    except JobBusyError as exc:
        countdown = max(1.0, min(settings.stale_after, settings.visibility_timeout / 4))
        log.info("job %s: %s; looking again in %.0f s", job_id, exc, countdown)
        raise self.retry(countdown=countdown) from None
    log.info("job %s: %s %s", job_id, outcome.status, outcome.detail)
    return outcome.status
