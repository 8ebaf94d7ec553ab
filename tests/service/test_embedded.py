"""The embedded default: ``genmix serve`` with no configuration runs SQLite + the filesystem broker + one local
worker, serves a job over real HTTP, says it is single-machine, and stops cleanly."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from service.helpers import REPO_ROOT, quick_job, wait_for


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_embedded_end_to_end(tmp_path: Path, data_dir: Path, slice_bytes: bytes) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENMIX_")}
    env.update(GENMIX_DATA_DIR=str(data_dir), GENMIX_TORCH_THREADS="1", PYTHONPATH=str(REPO_ROOT))
    state, port = tmp_path / "state", _free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "--port", str(port), "--data-dir", str(state)],
            env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:

            def healthy() -> bool:
                assert server.poll() is None, log_path.read_text()
                try:
                    return client.get("/healthz").status_code == 200
                except httpx.TransportError:
                    return False

            wait_for(healthy, 120, 0.3, "genmix serve to answer")
            key = subprocess.run(
                [sys.executable, "-m", "cli.main", "apikey", "create", "--name", "lab", "--data-dir", str(state)],
                env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=60,
            ).stdout.strip()  # fmt: skip
            client.headers["Authorization"] = f"Bearer {key}"
            dataset = client.post("/datasets", files={"file": ("b.npz", slice_bytes)}).json()
            job = client.post("/jobs", json=quick_job(dataset["id"])).json()
            assert job["status"] == "queued"

            def done() -> dict | None:
                state_ = client.get(f"/jobs/{job['id']}").json()
                return state_ if state_["status"] in ("succeeded", "failed", "cancelled") else None

            final = wait_for(done, 300, 0.5, "the embedded job")
            assert final["status"] == "succeeded", (final["error"], log_path.read_text()[-3000:])
            assert len(final["results"]["runs"]) == 2
            genmix = client.get("/samples", params={"job_id": job["id"], "kind": "genmix"}).json()["data"]
            assert genmix and client.get(f"/samples/{genmix[0]['id']}").headers["content-type"] == "image/png"
        assert (state / "genmix.db").is_file() and (state / "broker" / "queue").is_dir()
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
        try:
            code = server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            pytest.fail("genmix serve did not stop within 60 s of SIGTERM")
    log = log_path.read_text()
    assert code == 0, log[-3000:]
    assert "single machine" in log and "local worker stopped" in log
    worker_pid = int(re.search(r"local worker started \(pid (\d+)", log).group(1))  # type: ignore[union-attr]
    with pytest.raises(ProcessLookupError):  # the worker ran in its own process group: none of it is left
        os.killpg(worker_pid, 0)
