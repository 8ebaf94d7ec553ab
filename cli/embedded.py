"""``genmix serve``: migrations, a sweep of what a killed API left behind, the API under granian (or uvicorn),
and (unless ``--no-worker``) one local worker process.

HTTP worker processes that die (killed, out of memory) are started again by granian
(``respawn_failed_workers``) while the others go on serving; under uvicorn, run it under a supervisor
(systemd ``Restart=always``, a container restart policy).

The local worker runs as a child process in its own session; when the server stops, its Celery parent gets a
warm shutdown (SIGTERM, which it passes on to its pool), then the whole group a cold one (SIGQUIT) if a job
keeps it busy, then SIGKILL. A job cut off this way is re-queued by the next worker sweep
(``workers.sweep``).
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


def sweep_stale_files(settings: Settings) -> None:
    """Delete upload parts and uncommitted dataset folders a killed API left (``core.janitor``)."""
    from core.db.session import Database
    from core.janitor import remove_stale_files

    db = Database(settings.database_url)
    try:
        with db.session() as session:
            remove_stale_files(settings, session)
    except Exception:  # never refuse to start over a sweep; the worker sweep tries again
        log.warning("could not sweep stale upload files", exc_info=True)
    finally:
        db.dispose()


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
        # SIGTERM to the Celery parent alone: sent to the group, it would kill the idle pool children first and
        # the parent would log their deaths as errors. Escalations go to the whole group.
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
            try:
                if sig == signal.SIGTERM:
                    process.send_signal(sig)
                else:
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
                factory=True, websockets=False, log_level=LogLevels(log_level.lower()),
                respawn_failed_workers=True).serve()  # fmt: skip
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
    sweep_stale_files(settings)
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
