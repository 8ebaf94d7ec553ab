"""The embedded default: ``genmix serve`` with no configuration runs SQLite + the filesystem broker + one local
worker, serves a job over real HTTP, says it is single-machine, and stops cleanly."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from support.processes import GenmixServe, clean_env

from service.helpers import quick_job, wait_for


def test_serve_embedded_end_to_end(tmp_path: Path, data_dir: Path, slice_bytes: bytes) -> None:
    env = clean_env(GENMIX_DATA_DIR=str(data_dir), GENMIX_TORCH_THREADS="1")
    state = tmp_path / "state"
    service = GenmixServe(state, env, tmp_path / "serve.log", key_name="lab")
    with service, service.client() as client:
        dataset = client.post("/datasets", files={"file": ("b.npz", slice_bytes)}).json()
        job = client.post("/jobs", json=quick_job(dataset["id"])).json()
        assert job["status"] == "queued"

        def done() -> dict | None:
            state_ = client.get(f"/jobs/{job['id']}").json()
            return state_ if state_["status"] in ("succeeded", "failed", "cancelled") else None

        final = wait_for(done, 300, 0.5, "the embedded job")
        assert final["status"] == "succeeded", (final["error"], service.log_tail(3000))
        assert len(final["results"]["runs"]) == 2
        genmix = client.get("/samples", params={"job_id": job["id"], "kind": "genmix"}).json()["data"]
        assert genmix and client.get(f"/samples/{genmix[0]['id']}").headers["content-type"] == "image/png"
        assert (state / "genmix.db").is_file() and (state / "broker" / "queue").is_dir()
        code = service.stop()
    log = service.log()
    assert code == 0, f"genmix serve exited with {code} (-9: still running 60 s after SIGTERM)\n{log[-3000:]}"
    assert "single machine" in log and "local worker stopped" in log
    worker_pid = int(re.search(r"local worker started \(pid (\d+)", log).group(1))  # type: ignore[union-attr]
    with pytest.raises(ProcessLookupError):  # the worker ran in its own process group: none of it is left
        os.killpg(worker_pid, 0)
