"""The Celery configuration shared by the API (which only publishes) and the workers (which consume).

Long GPU jobs need: late acks with reject-on-worker-lost (a killed worker's job is redelivered), prefetch 1
(a running job never holds a second one hostage), one task per child (GPU memory is freed when the child
exits), and a Redis visibility timeout above the longest job (or Redis hands a running job to a second
worker). A message carries only the job id; everything else is in the database.

With no broker configured, kombu's filesystem transport under ``<state_dir>/broker`` is used: it needs no
server but only works on one machine, and it deletes a message as it reads it, so a crash loses the message
(the worker re-queues such orphaned jobs when it starts, see ``workers.recovery``).
"""

from __future__ import annotations

from threading import Lock
from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from core.names import QUEUES
from core.settings import Settings

TASK_NAME = "genmix.run_job"
RECOVER_TASK_NAME = "genmix.recover_orphans"


def celery_config(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any]
    if settings.is_embedded_broker:
        folder = settings.broker_dir
        options = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
            "polling_interval": 0.5,
        }
    else:
        options = {"visibility_timeout": settings.visibility_timeout}
        if settings.redis_key_prefix:
            options["global_keyprefix"] = settings.redis_key_prefix
    return {
        "broker_url": settings.broker_url,
        "broker_transport_options": options,
        "result_backend": None,
        "result_backend_transport_options": {"visibility_timeout": settings.visibility_timeout},
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_max_tasks_per_child": 1,
        "worker_concurrency": settings.worker_concurrency,
        "task_queues": tuple(Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES),
        "task_default_queue": settings.default_queue,
        "task_default_exchange": settings.default_queue,
        "task_default_routing_key": settings.default_queue,
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        "worker_enable_remote_control": not settings.is_embedded_broker,
        "worker_send_task_events": False,
        "enable_utc": True,
    }


def build_celery(settings: Settings, *, include: list[str] | None = None) -> Celery:
    app = Celery("genmix", include=include or [])
    app.conf.update(celery_config(settings))
    return app


_PUBLISHERS: dict[tuple[str, str, str], Celery] = {}
_LOCK = Lock()


def _publisher(settings: Settings) -> Celery:
    """One publishing Celery app per broker, reused so its connection pool is too."""
    key = (settings.broker_url, settings.redis_key_prefix, str(settings.state_dir))
    with _LOCK:
        if key not in _PUBLISHERS:
            _PUBLISHERS[key] = build_celery(settings)
        return _PUBLISHERS[key]


def enqueue_job(settings: Settings, *, job_id: str, queue: str) -> None:
    """Publish the job id (only after the job row is committed); raises when the broker is unreachable."""
    if settings.is_embedded_broker:
        settings.ensure_dirs()
    publisher = _publisher(settings)
    publisher.send_task(
        TASK_NAME,
        args=[job_id],
        queue=queue,
        retry=True,
        retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1.0},
    )
