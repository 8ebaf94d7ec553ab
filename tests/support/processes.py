"""Subprocesses the tests and benchmarks start: ``genmix serve`` with a key, a clean environment; the port,
wait and stop plumbing is the demo's own (:mod:`cli.processes`), re-exported here."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import httpx

from cli.processes import ServiceError, free_port, stop_process, wait_http

REPO_ROOT = Path(__file__).resolve().parents[2]
GENMIX = [sys.executable, "-m", "cli.main"]
__all__ = ["GenmixServe", "ServiceError", "clean_env", "create_key", "free_port", "stop_process", "wait_http"]


def clean_env(genmix: Mapping[str, str] | None = None, **more: str) -> dict[str, str]:
    """This environment without any ``GENMIX_*`` variable, plus ``genmix`` and ``more``, with the repo on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENMIX_")}
    env.update(genmix or {})
    env.update(more)
    env["PYTHONPATH"] = str(REPO_ROOT)
    return env


def create_key(state_dir: Path, env: Mapping[str, str], name: str) -> str:
    """A new API key from ``genmix apikey create`` on the service whose state lies in ``state_dir``."""
    return subprocess.run(
        [*GENMIX, "apikey", "create", "--name", name, "--data-dir", str(state_dir)],
        env=dict(env), cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=120,
    ).stdout.strip()  # fmt: skip


class GenmixServe:
    """``genmix serve --data-dir state_dir`` (embedded: SQLite, filesystem broker, one local worker) on a free
    loopback port, healthy, with an API key from ``genmix apikey create``; a context manager that stops it.

    ``env`` is the whole environment of the subprocess (see ``clean_env``); output goes to ``log_path``.
    """

    def __init__(self, state_dir: Path, env: Mapping[str, str], log_path: Path, key_name: str = "test",
                 start_timeout: float = 120.0, args: Sequence[str] = ()) -> None:  # fmt: skip
        self.state_dir = Path(state_dir)
        self.args = list(args)  # more ``genmix serve`` options, e.g. ``--no-worker``
        self.env = dict(env)
        self.log_path = Path(log_path)
        self.key_name = key_name
        self.start_timeout = start_timeout
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.api_key = ""
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> GenmixServe:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*GENMIX, "serve", "--host", "127.0.0.1", "--port", str(self.port), "--data-dir", str(self.state_dir),
                 *self.args],
                env=self.env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        try:
            wait_http(f"{self.base_url}/healthz", self.start_timeout, self.process, self.log_path)
            self.api_key = create_key(self.state_dir, self.env, self.key_name)
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def client(self, timeout: float = 30.0) -> httpx.Client:
        """An HTTP client on the service that sends the API key."""
        return httpx.Client(base_url=self.base_url, headers=self.headers, timeout=timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, chars: int = 4000) -> str:
        return self.log()[-chars:]

    def stop(self, timeout: float = 60.0) -> int | None:
        """Stop the service's process group (see ``stop_process``); its exit code, ``None`` if never started."""
        return None if self.process is None else stop_process(self.process, timeout)

    def __enter__(self) -> GenmixServe:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
