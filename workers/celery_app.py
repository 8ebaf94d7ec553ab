"""The Celery app the workers run: ``celery -A workers.celery_app worker -Q cpu`` (or ``genmix worker``).

Configuration is :func:`core.queue.celery_config`, shared with the API that publishes. CUDA is never touched
here: the worker parent imports torch (so forked children start fast) but only tasks pick a device.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from celery.signals import worker_init, worker_ready, worker_shutdown

from core.queue import build_celery
from core.settings import get_settings

log = logging.getLogger("genmix.worker")
settings = get_settings()
# Stale unit messages are revoked by task id (workers.units.revoke); with no result backend Celery warns on
# each one that it cannot record the revocation there, which is by design here.
logging.getLogger("celery.worker.control").addFilter(lambda record: "as revoked in backend" not in record.getMessage())
celery_app = build_celery(settings, include=["workers.tasks"])
app = celery_app


@worker_init.connect
def _announce(**_: Any) -> None:
    if settings.worker_preload:
        # Import the science stack once in the parent, so each one-task child forks warm. This loads torch
        # but never initialises CUDA (children pick their device inside the task).
        import models.experiment  # noqa: F401
    if settings.is_embedded_broker:
        log.warning(
            "embedded mode: SQLite at %s and the kombu filesystem broker at %s; single-machine only "
            "(a crash loses the in-flight message; orphaned jobs are re-queued at start). "
            "Set GENMIX_DATABASE_URL and GENMIX_BROKER_URL (PostgreSQL, Redis) for production.",
            settings.database_url,
            settings.broker_dir,
        )


_sweeper: Any = None


@worker_ready.connect
def _recover(**_: Any) -> None:
    """Sweep for orphaned and lost jobs now, then every ``sweep_interval`` s (``workers.sweep``), in a process
    of its own beside this one, so it goes on while the children train and shares no lock with their forks."""
    global _sweeper
    from celery.exceptions import CPendingDeprecationWarning

    from workers.sweep import SweepProcess

    # The behaviour on a lost broker connection is set (core.queue: running jobs go on); Celery 5 warns about
    # its future default even so, on every reconnect.
    warnings.filterwarnings("ignore", message=r"\s*In Celery 5.1 we introduced an optional breaking change",
                            category=CPendingDeprecationWarning)  # fmt: skip
    _sweeper = SweepProcess()
    _sweeper.start()


@worker_shutdown.connect
def _stop_sweeping(**_: Any) -> None:
    if _sweeper is not None:
        _sweeper.stop()
