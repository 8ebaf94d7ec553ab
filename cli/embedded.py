"""``genmix serve``: migrations, the API under uvicorn, and (unless ``--no-worker``) one local worker process.

The worker runs as a child process in its own session; when the server stops it gets a warm shutdown
(SIGTERM), then a cold one (SIGQUIT) if a job keeps it busy, then SIGKILL. A job cut off this way is
re-queued when a worker starts again (``workers.recovery``).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

from core.db import migrate
from core.settings import Settings

log = logging.getLogger("genmix.serve")


def prepare_database(settings: Settings) -> None:
    """Upgrade an embedded SQLite database in place; refuse to start on an un-migrated server database."""
    settings.ensure_dirs()
    if settings.is_sqlite:
        migrate.upgrade(settings.database_url)
        return
    current, head = migrate.current_revision(settings.database_url), migrate.head_revision()
    if current != head:
        raise SystemExit(
            f"the database is at migration {current or 'none'}, not {head}: run `genmix db upgrade` "
            "(or `alembic upgrade head`) first"
        )


def describe(settings: Settings) -> str:
    if settings.is_sqlite and settings.is_embedded_broker:
        return (
            f"embedded mode, single machine only: SQLite (WAL) at {settings.state_dir / 'genmix.db'}, "
            f"filesystem broker at {settings.broker_dir}, artifacts at {settings.artifacts}"
        )
    database = settings.database_url.split("@")[-1]
    broker = settings.broker_url.split("@")[-1]
    return f"database {database}, broker {broker}, artifacts at {settings.artifacts}"


class LocalWorker:
    """One ``genmix worker`` child process serving both queues, restarted if it dies on its own."""

    def __init__(self, env: dict[str, str], queues: str = "gpu,cpu", max_restarts: int = 5) -> None:
        self.env = env
        self.queues = queues
        self.max_restarts = max_restarts
        self.process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._watch: threading.Thread | None = None

    def start(self) -> None:
        self._spawn()
        self._watch = threading.Thread(target=self._watchdog, name="genmix-worker-watchdog", daemon=True)
        self._watch.start()

    def _spawn(self) -> None:
        command = [sys.executable, "-m", "cli.main", "worker", "--queues", self.queues]
        self.process = subprocess.Popen(command, env=self.env, start_new_session=True)
        log.info("local worker started (pid %d, queues %s)", self.process.pid, self.queues)

    def _watchdog(self) -> None:
        restarts = 0
        while not self._stopping.wait(2.0):
            assert self.process is not None
            code = self.process.poll()
            if code is None or self._stopping.is_set():
                continue
            if restarts >= self.max_restarts:
                log.error("local worker exited with %s; not restarting it again", code)
                return
            restarts += 1
            log.warning("local worker exited with %s; restarting it", code)
            self._spawn()

    def stop(self, grace: float = 10.0) -> None:
        self._stopping.set()
        process = self.process
        if process is None or process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(timeout=wait)
                log.info("local worker stopped")
                return
            except subprocess.TimeoutExpired:
                continue


def run_http(*, server: str, host: str, port: int, workers: int, log_level: str) -> None:
    """Serve ``app.main:create_app`` with granian (Rust HTTP core, the default) or uvicorn; blocks until stopped."""
    if server == "granian":
        from granian import Granian
        from granian.constants import Interfaces
        from granian.log import LogLevels

        Granian("app.main:create_app", address=host, port=port, interface=Interfaces.ASGI, workers=workers,
                factory=True, websockets=False, log_level=LogLevels(log_level.lower())).serve()  # fmt: skip
        return
    import uvicorn

    uvicorn.run("app.main:create_app", factory=True, host=host, port=port, workers=workers,
                log_level=log_level.lower(), access_log=False)  # fmt: skip


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int,
    with_worker: bool,
    log_level: str,
    server: str = "granian",
) -> None:
    prepare_database(settings)
    log.info("GenMix API on http://%s:%d (%s)", host, port, describe(settings))
    worker: LocalWorker | None = None
    if with_worker:
        env = dict(os.environ, GENMIX_STATE_DIR=str(settings.state_dir))
        worker = LocalWorker(env)
        worker.start()
    started = time.monotonic()

    def stop_cleanly(signum: int, _frame: object) -> None:
        raise SystemExit(0)  # a server may re-raise the signal after its shutdown: end here, stop the worker

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop_cleanly)
    try:
        run_http(server=server, host=host, port=port, workers=workers, log_level=log_level)
    finally:
        if worker is not None:
            worker.stop()
        log.info("GenMix stopped after %.0f s", time.monotonic() - started)
