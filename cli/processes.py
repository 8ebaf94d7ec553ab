"""Subprocess plumbing the demo starts a service with (and the tests and benchmarks reuse): a free port,
waiting for an HTTP answer, stopping a process group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx


class ServiceError(RuntimeError):
    """A subprocess did not come up (it exited, or did not answer in time); the message has its log's tail."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(process: subprocess.Popen[bytes], timeout: float = 60.0, group: bool = True) -> int:
    """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL; returns the exit code (``-9``: it had to be killed).

    With ``group`` (the process was started with ``start_new_session=True``) the signals go to its whole
    process group, so the children it started go too.
    """

    def send(sig: signal.Signals) -> None:
        try:
            os.killpg(process.pid, sig) if group else process.send_signal(sig)
        except ProcessLookupError:
            pass

    if process.poll() is None:
        send(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        return process.wait()


def _tail(log_path: Path | None, chars: int = 4000) -> str:
    if log_path is None or not log_path.exists():
        return ""
    return log_path.read_text(errors="replace")[-chars:]


def wait_http(url: str, timeout: float = 120.0, process: subprocess.Popen[bytes] | None = None,
              log_path: Path | None = None) -> None:  # fmt: skip
    """Poll ``GET url`` until it answers 200; raise ``ServiceError`` if ``process`` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise ServiceError(f"the process behind {url} exited with {process.returncode}:\n{_tail(log_path)}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise ServiceError(f"{url} did not answer within {timeout:.0f} s:\n{_tail(log_path)}")
        time.sleep(0.3)
