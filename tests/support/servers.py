"""Private PostgreSQL and Redis servers for the fault tests: own port, own data directory, stopped and started
at will (a restart, an outage) without ever touching the shared servers other tests and engineers use.

PostgreSQL runs from the binaries under ``/usr/lib/postgresql/*/bin`` (or ``GENMIX_TEST_PG_BIN``), with
``fsync=off``: these servers hold throw-away data. initdb refuses to run as root, so as root the server runs
as the ``postgres`` user (its folder is created for that user). Redis runs ``redis-server`` from ``PATH``
without persistence, like the shared one: a restart loses every key.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from glob import glob
from pathlib import Path

import psycopg
import redis

from cli.processes import free_port


def _pg_bin() -> Path:
    configured = os.environ.get("GENMIX_TEST_PG_BIN")
    if configured:
        return Path(configured)
    found = sorted(glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    raise RuntimeError("no PostgreSQL binaries (pg_ctl, initdb): install postgresql or set GENMIX_TEST_PG_BIN")


class PrivatePostgres:
    """One throw-away PostgreSQL cluster on 127.0.0.1:``port`` with a database ``genmix``."""

    def __init__(self, database: str = "genmix") -> None:
        self.bin = _pg_bin()
        self.port = free_port()
        self.database = database
        self.base = Path(tempfile.mkdtemp(prefix="genmix-pg-"))
        self.data = self.base / "data"
        self.log_path = self.base / "server.log"
        self._user: pwd.struct_passwd | None = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        if self._user is not None:
            os.chown(self.base, self._user.pw_uid, self._user.pw_gid)

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the ``genmix`` database."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *args: str, timeout: float = 120) -> None:
        kwargs = {} if self._user is None else {"user": self._user.pw_uid, "group": self._user.pw_gid}
        result = subprocess.run([str(self.bin / args[0]), *args[1:]], capture_output=True, text=True,
                                timeout=timeout, cwd=self.base, **kwargs)  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed ({result.returncode}): {result.stderr}{result.stdout}")

    def init(self) -> PrivatePostgres:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        self.start()
        with psycopg.connect(self._admin_url(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')
        return self

    def _admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.base} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")  # fmt: skip
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-o", options, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: disconnect every client; ``immediate``: like a crash)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self, down_for: float = 0.5, mode: str = "fast") -> None:
        self.stop(mode)
        time.sleep(down_for)
        self.start()

    def remove(self) -> None:
        try:
            self.stop("immediate")
        except Exception:
            pass
        shutil.rmtree(self.base, ignore_errors=True)


class PrivateRedis:
    """One ``redis-server`` on 127.0.0.1:``port`` without persistence (a restart empties it)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="genmix-redis-"))
        self.log_path = self.base / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.base)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start: {self.log_path.read_text()}") from None
                time.sleep(0.1)
        client.close()
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def restart(self, down_for: float = 0.5) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def remove(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        shutil.rmtree(self.base, ignore_errors=True)
