"""Thin Celery tasks: a job id (:mod:`workers.delivery`, the job's coordinator) or a job id and a unit key
(:mod:`workers.units`); those modules do the work."""

from __future__ import annotations

import logging
from typing import Any

from core.queue import TASK_NAME, UNIT_TASK_NAME
from workers.celery_app import celery_app, settings
from workers.delivery import JobBusyError, execute
from workers.units import execute_unit

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


@celery_app.task(name=UNIT_TASK_NAME, acks_late=True, reject_on_worker_lost=True)
def run_unit(job_id: str, key: str) -> str:
    """Run one unit of a job (:mod:`workers.units`), or drop the message when the unit is taken, finished or
    not ready, or its job is over: the job's coordinator re-queues and publishes units as it needs."""
    from models.runtime import configure_threads

    configure_threads(settings.torch_threads)
    status = execute_unit(job_id, key, settings)
    log.info("job %s unit %s: %s", job_id, key, status)
    return status
