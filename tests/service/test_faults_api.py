"""A killed API process (issue 11, item 13): what it left behind is swept when the service starts again, and an
HTTP worker process that dies is replaced while the service goes on serving."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import httpx
from support.processes import GenmixServe, clean_env

HOURS = 3600.0


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _healthy(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_serve_sweeps_what_a_killed_api_left_and_replaces_a_dead_http_worker(tmp_path: Path) -> None:
    state = tmp_path / "state"
    uploads, datasets = state / "artifacts" / "uploads", state / "artifacts" / "datasets"
    uploads.mkdir(parents=True)
    stale_part, live_part = uploads / f"{uuid.uuid4().hex}.part", uploads / f"{uuid.uuid4().hex}.part"
    stale_part.write_bytes(b"\0" * 1024 * 1024)
    live_part.write_bytes(b"\0" * 1024)  # an upload streaming right now (another API process)
    orphan = datasets / str(uuid.uuid4())  # written, then killed before the row was committed
    orphan.mkdir(parents=True)
    (orphan / ".data.npz.0123abcd.tmp").write_bytes(b"\0" * 1024)
    for path in (stale_part, orphan / ".data.npz.0123abcd.tmp", orphan):
        _age(path, 2 * HOURS)

    with GenmixServe(state, clean_env(), tmp_path / "serve.log", args=["--no-worker"]) as serve:
        assert not stale_part.exists() and not orphan.exists(), serve.log_tail()
        assert live_part.exists()
        assert serve.process is not None
        http_workers = _children(serve.process.pid)
        assert http_workers, serve.log_tail()
        os.kill(http_workers[0], signal.SIGKILL)
        time.sleep(1.0)
        deadline = time.monotonic() + 30
        while not _healthy(serve.base_url):
            assert serve.process.poll() is None, f"the API stopped when one HTTP worker died:\n{serve.log_tail()}"
            assert time.monotonic() < deadline, f"no HTTP worker came back:\n{serve.log_tail()}"
            time.sleep(0.3)
        assert serve.process.poll() is None
        assert http_workers[0] not in _children(serve.process.pid)
        with serve.client() as client:
            assert client.get("/jobs").status_code == 200


def test_stopping_an_idle_embedded_service_logs_no_error(tmp_path: Path) -> None:
    """The new user's list: the idle local worker's clean shutdown logged an ERROR (its pool children got the
    SIGTERM meant for the worker and died first)."""
    serve = GenmixServe(tmp_path / "state", clean_env(), tmp_path / "serve.log").start()
    try:
        deadline = time.monotonic() + 180
        while " ready." not in serve.log():
            assert time.monotonic() < deadline, serve.log_tail()
            time.sleep(0.5)
        time.sleep(2.0)
    finally:
        code = serve.stop()
    log = serve.log()
    assert code == 0, log[-4000:]
    assert "local worker stopped" in log, log[-4000:]
    assert not [line for line in log.splitlines() if " ERROR " in line or "ERROR/" in line], log[-4000:]
