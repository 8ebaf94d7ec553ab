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

import ast
import base64
import json
import time
from dataclasses import dataclass
from pathlib import Path
from threading import Lock
from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from core.names import QUEUES
from core.settings import Settings

TASK_NAME = "genmix.run_job"
UNIT_TASK_NAME = "genmix.run_unit"


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
        # Celery 6 will cancel running late-ack tasks when the broker connection drops (Celery 5 only warns).
        # GenMix keeps them running: a job's state is in the database, a Redis restart must not kill hours of
        # training, and a message lost with the connection is published again by the worker sweep.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
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


def enqueue_job(settings: Settings, *, job_id: str, queue: str, app: Celery | None = None) -> None:
    """Publish the job id (only after the job row is committed); raises when the broker is unreachable.

    ``app``: the Celery app to publish with (a worker's own; default: one publisher per broker)."""
    if settings.is_embedded_broker:
        settings.ensure_dirs()
    publisher = app or _publisher(settings)
    publisher.send_task(
        TASK_NAME,
        args=[job_id],
        queue=queue,
        retry=True,
        retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1.0},
    )


def enqueue_unit(settings: Settings, *, job_id: str, key: str, queue: str, message_id: str | None = None,
                 app: Celery | None = None) -> None:  # fmt: skip
    """Publish one ready unit of a job (its job id and unit key: the rest is in the database) on the job's
    queue, after the commit that marked it published (``core.crud.units.mark_enqueued``)."""
    if settings.is_embedded_broker:
        settings.ensure_dirs()
    publisher = app or _publisher(settings)
    publisher.send_task(
        UNIT_TASK_NAME,
        args=[job_id, key],
        queue=queue,
        task_id=message_id,
        retry=True,
        retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1.0},
    )


def revoke_messages(settings: Settings, message_ids: list[str]) -> None:
    """Tell every worker to drop these unit messages unread (another process took the unit, or the job ended):
    a revoked message is acknowledged by the worker's main process, without a pool process. Workers of the
    folder broker have no remote control: there a stale message is read and dropped by the unit's claim."""
    if not message_ids or settings.is_embedded_broker:
        return
    _publisher(settings).control.revoke(message_ids)


@dataclass(frozen=True)
class BrokerView:
    """Which jobs the broker holds a message for: ``waiting`` in a queue, or ``delivered`` to a consumer and not
    acknowledged yet (job id -> seconds since delivery; Redis only: the filesystem transport deletes a message
    as it hands it out)."""

    waiting: frozenset[str]
    delivered: dict[str, float]


def broker_view(settings: Settings) -> BrokerView:
    """Read the job ids of every ``genmix.run_job`` message in the broker; raises when it is unreachable."""
    if settings.is_embedded_broker:
        return BrokerView(frozenset(_folder_jobs(settings.broker_dir / "queue")), {})
    if settings.broker_url.startswith(("redis://", "rediss://", "unix://")):
        return _redis_view(settings)
    raise NotImplementedError(f"cannot read the messages of broker {settings.broker_url.split('://')[0]}")


def message_job_id(payload: Any) -> str | None:
    """The job id of a Celery (protocol 2) ``genmix.run_job`` message as kombu stores it, else None."""
    if isinstance(payload, str | bytes):
        try:
            payload = json.loads(payload)
        except ValueError:
            return None
    if not isinstance(payload, dict):
        return None
    headers = payload.get("headers") or {}
    if headers.get("task") != TASK_NAME:
        return None
    try:
        body = payload.get("body", "")
        if (payload.get("properties") or {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
    except (ValueError, TypeError, IndexError, KeyError):
        try:
            args = ast.literal_eval(headers.get("argsrepr") or "")
        except (ValueError, SyntaxError):
            return None
    return str(args[0]) if isinstance(args, list | tuple) and args else None


def _folder_jobs(folder: Path) -> set[str]:
    found = set()
    for path in folder.glob("*.msg") if folder.is_dir() else []:
        try:
            job_id = message_job_id(path.read_bytes())
        except OSError:  # consumed meanwhile
            continue
        if job_id:
            found.add(job_id)
    return found


def _redis_view(settings: Settings) -> BrokerView:
    import redis

    prefix = settings.redis_key_prefix
    client = redis.Redis.from_url(settings.broker_url, socket_connect_timeout=5, socket_timeout=10)
    try:
        waiting: set[str] = set()
        for name in QUEUES:
            for key in [name, *(f"{name}{_REDIS_PRIORITY_SEP}{step}" for step in _REDIS_PRIORITY_STEPS)]:
                for raw in client.lrange(f"{prefix}{key}", 0, -1):
                    job_id = message_job_id(raw)
                    if job_id:
                        waiting.add(job_id)
        delivered: dict[str, float] = {}
        since = dict(client.zrange(f"{prefix}unacked_index", 0, -1, withscores=True))
        now = time.time()
        for tag, raw in client.hgetall(f"{prefix}unacked").items():
            try:
                job_id = message_job_id(json.loads(raw)[0])
            except (ValueError, TypeError, IndexError):
                continue
            if job_id:
                delivered[job_id] = now - float(since.get(tag, now))
        return BrokerView(frozenset(waiting), delivered)
    finally:
        client.close()


_REDIS_PRIORITY_SEP = "\x06\x16"  # kombu's Redis transport: one list per priority step, "<queue>\x06\x16<step>"
_REDIS_PRIORITY_STEPS = (3, 6, 9)
