"""``genmix demo``: the whole service on one machine, driven through its HTTP API like a lab client would.

Starts ``genmix serve`` (embedded: SQLite + filesystem broker + one worker; any PostgreSQL/Redis settings in
the environment are ignored), creates an API key, uploads BreastMNIST (the official MedMNIST file when the
network allows, else ``<GENMIX_DATA_DIR>/breastmnist.npz``), launches a quick DCGAN GenMix job, follows its
server-sent events, prints the results table and the URLs of samples and figures, and stops the service.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from cli.processes import ServiceError, free_port, stop_process, wait_http
from core.settings import Settings
from models.errors import DatasetError
from models.medmnist import fetch_medmnist, medmnist_url
from models.table import format_table
from models.verdict import verdict_lines

CLASS_NAMES = "malignant,normal_or_benign"

JOB = {
    "generators": ["dcgan"],
    "profile": "quick",
    "classifier_settings": {"epochs": 15, "patience": 5},
    "generator_settings": {"dcgan": {"iterations": 600}},
    "samples_per_class": 6,
}
"""Every arm of Table 1 at the spec's defaults (the paper's α), shortened to run in minutes on a laptop."""
FAST = {"classifier_settings": {"epochs": 2}, "generator_settings": {"dcgan": {"iterations": 40}}}


def say(message: str) -> None:
    print(message, flush=True)


def fetch_breastmnist(cache_dir: Path, data_dir: Path, offline: bool = False) -> tuple[Path, str]:
    """The official file (downloaded into ``cache_dir`` and MD5-checked), else the local copy; (path, source)."""
    try:
        path = fetch_medmnist("breastmnist", 28, data_dir, cache_dir=cache_dir, offline=offline)
    except DatasetError as exc:
        raise SystemExit(f"no BreastMNIST: {exc} (set GENMIX_DATA_DIR)") from exc
    if path.parent == Path(data_dir):
        say("  MedMNIST download unavailable; using the local copy")
        return path, str(path)
    return path, medmnist_url("breastmnist", 28)


def sse_events(client: httpx.Client, url: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event, data) pairs from a server-sent event stream."""
    with client.stream("GET", url, timeout=httpx.Timeout(30.0, read=None)) as response:
        response.raise_for_status()
        kind, data = "message", ""
        for line in response.iter_lines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            elif line == "":
                if data:
                    yield kind, json.loads(data)
                kind, data = "message", ""


def _follow(client: httpx.Client, job_id: str) -> str:
    last_print = 0.0
    status = "queued"
    for kind, data in sse_events(client, f"/jobs/{job_id}/events"):
        if kind == "stage":
            say(f"  [{data['index'] + 1}/{data['count']}] {data['stage']}")
        elif kind == "progress" and data.get("total") and time.monotonic() - last_print > 5:
            last_print = time.monotonic()
            eta = data.get("eta_seconds")
            eta_text = f", ETA {eta:.0f} s" if eta is not None else ""
            say(f"      step {data['step']}/{data['total']}{eta_text}")
        elif kind == "run_finished":
            auc = "n/a" if data.get("auc") is None else f"{data['auc']:.3f}"
            scores = f"accuracy {data['accuracy']:.3f}, macro F1 {data['macro_f1']:.3f}, AUC {auc}"
            say(f"      {data['run_id']}: {scores}")
        elif kind == "status":
            status = data["status"]
            if status in ("failed", "cancelled"):
                say(f"  job {status}: {data.get('error') or data.get('reason') or ''}")
        elif kind == "end":
            return data["status"]
    return status


def closing_note(state: Path, keep_running: bool) -> str:
    """What happens to the service once the demo is done, said before the URLs and the key it prints."""
    if keep_running:
        return "the service keeps running after the demo (Ctrl-C stops it): the URLs and the key below work"
    return (
        "the demo stops the service when it is done, so the URLs and the key below work only until then: rerun "
        "with --keep-running to keep it up, or serve this state again later with "
        f"`genmix serve --data-dir {state}` (the key stays valid)"
    )


def run_demo(data_dir: Path | None, *, port: int | None, keep_running: bool, fast: bool) -> int:
    state = Path(data_dir or tempfile.mkdtemp(prefix="genmix-demo-")).expanduser().resolve()
    state.mkdir(parents=True, exist_ok=True)
    settings = Settings(state_dir=state, database_url="", broker_url="", artifact_root=None)
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("GENMIX_DATABASE_URL", "GENMIX_BROKER_URL",
                                                               "GENMIX_ARTIFACT_ROOT")}  # fmt: skip
    env["GENMIX_STATE_DIR"] = str(state)
    env.setdefault("GENMIX_TORCH_THREADS", "1")  # small models on a shared CPU: more threads only contend
    log_path = state / "service.log"
    base = f"http://127.0.0.1:{port}"
    say(f"GenMix demo: embedded service at {base} (state in {state}, log in {log_path})")
    started = time.monotonic()
    with log_path.open("ab") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        with httpx.Client(base_url=base, timeout=60) as client:
            try:
                wait_http(f"{base}/healthz", 180, server, log_path)
            except ServiceError as exc:
                raise SystemExit(f"{exc}\n(the whole log: {log_path})") from None
            from app.security import create_api_key
            from core.db.session import Database

            db = Database(settings.database_url)
            with db.session() as session:
                key = create_api_key(session, name="demo")
            db.dispose()
            client.headers["Authorization"] = f"Bearer {key}"

            say("1. dataset")
            path, source = fetch_breastmnist(state / "cache", settings.data_dir, settings.offline)
            with path.open("rb") as fh:
                response = client.post("/datasets", files={"file": ("breastmnist.npz", fh)},
                                       data={"name": "BreastMNIST", "class_names": CLASS_NAMES})  # fmt: skip
            response.raise_for_status()
            dataset = response.json()
            say(f"  uploaded {dataset['name']} from {source}: {dataset['counts']}")

            say("2. job")
            spec = {**JOB, **(FAST if fast else {}), "dataset_id": dataset["id"]}
            response = client.post("/jobs", json=spec, headers={"Idempotency-Key": f"demo-{dataset['id']}"})
            response.raise_for_status()
            job_id, arms = response.json()["id"], response.json()["spec"]["arms"]
            say(f"  {base}/jobs/{job_id} queued: DCGAN GenMix, arms {', '.join(arms)}")
            status = _follow(client, job_id)

            job = client.get(f"/jobs/{job_id}").json()
            say(f"3. results (job {status}, attempts {job['attempts']})")
            verdicts = (job["results"] or {}).get("verdicts") or {}
            for line in verdict_lines(verdicts):
                say(f"  {line}")
            if job["results"] and job["results"]["summary"]:
                rows = job["results"]["summary"]
                say(format_table(rows, [entry["class"] for entry in rows[0]["per_class"]]))
            say(closing_note(state, keep_running))
            say("4. samples (PNG; send the same Authorization header)")
            for kind in ("real", "synthetic", "genmix"):
                page = client.get("/samples", params={"job_id": job_id, "kind": kind, "limit": 3}).json()
                for sample in page["data"]:
                    extra = ""
                    if kind == "genmix":
                        extra = (f"  λ={sample['lam']:.3f} parents {sample['parent_real_id']} (real) + "
                                 f"{sample['parent_partner_id']} ({sample['partner_pool']})")  # fmt: skip
                    say(f"  {kind:<9} {sample['url']}  class {sample['class_name']}{extra}")
                say(f"  ... {page['count']} {kind} samples in all")
            say("5. figures")
            for artifact in client.get(f"/jobs/{job_id}/artifacts", params={"kind": "figure"}).json()["data"]:
                say(f"  {artifact['url']}  {artifact['name']}")
            say(f"done in {time.monotonic() - started:.0f} s; API key for this service: {key}")
            if keep_running:
                say("the service keeps running; Ctrl-C stops it")
                try:
                    server.wait()
                except KeyboardInterrupt:
                    pass
            return 0 if status == "succeeded" else 1
    finally:
        stop_process(server)
        say(f"service stopped; files kept in {state}")
