"""API throughput on loopback: ``GET /samples/{id}`` against nginx serving the same PNGs, and ``POST /jobs``.

Same run, same machine, same load generator (wrk, 32 connections): the API (uvicorn, ``--api-workers``
processes, authenticated, each request owner-checked) and nginx (``worker_processes`` = the same count)
serve the same sample PNG bytes; the ratio of requests/s and both p99 latencies are reported. Then ``POST
/jobs`` is driven with valid experiment specs (validated, committed, published to the broker; no worker
consumes them) and accepted jobs per second are counted and checked against the database.

Every figure is reported per wall second and per CPU second of the server that answered (user + system time
of all its processes during the measurement, from ``/proc``), because on a shared machine wall throughput
mostly measures the neighbours. A peer that fails fails the benchmark: the probe of each server must return
the sample's bytes with 200, and any non-2xx answer or socket error in any measurement exits non-zero. The
PNGs nginx serves live in their own world-readable folder, because nginx's workers drop root to an
unprivileged user and cannot enter the mode-700 scratch folder (which answered 403 to every request).

Production mode (default when reachable): a fresh PostgreSQL database on 127.0.0.1:5432 and a private key
prefix on the Redis at 127.0.0.1:6379, both removed afterwards; ``--mode embedded`` uses SQLite and the
filesystem broker instead. Needs ``nginx`` and ``wrk`` (Debian: ``apt-get install -y nginx wrk``).

    python bench/api.py [--duration 10] [--api-workers 2] [--mode production|embedded] [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from app.security import create_api_key  # noqa: E402
from cli.processes import ServiceError, free_port, stop_process, wait_http  # noqa: E402
from core.crud.samples import add_sample  # noqa: E402
from core.db import migrate  # noqa: E402
from core.db.orm import Dataset, Job  # noqa: E402
from core.db.session import Database  # noqa: E402
from core.settings import Settings, default_data_dir  # noqa: E402
from core.storage import ArtifactStore  # noqa: E402

PG = "postgresql://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379/14"
TARGETS = {"ratio": 0.25, "p99_ms": 50.0, "post_per_s": 200.0}


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def _session_cpu_seconds(leader: int) -> float:
    """User + system CPU seconds of every live process in ``leader``'s session (a server and its workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if int(fields[3]) == leader:  # field 6 of stat (session id); fields[0] is field 3 (state)
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def wrk(
    url: str,
    script: Path,
    duration: int,
    headers: dict[str, str],
    connections: int = 32,
    server: subprocess.Popen[bytes] | None = None,
) -> dict[str, float]:
    """Run wrk and parse requests/s, p50/p99 latency and the count of non-2xx responses; with ``server`` also the
    CPU seconds its processes used meanwhile and requests per CPU second."""
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script)]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    cpu_before = _session_cpu_seconds(server.pid) if server is not None else 0.0
    out = subprocess.run(command + [url], capture_output=True, text=True, check=True, timeout=duration + 60).stdout
    cpu = _session_cpu_seconds(server.pid) - cpu_before if server is not None else math.nan
    result = {
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": _ms(re.search(r"\n\s+50%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
        "p99_ms": _ms(re.search(r"\n\s+99%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
        "requests": float(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
        "non_2xx": 0.0,
    }
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad:
        result["non_2xx"] = float(bad.group(1))
    errors = re.search(r"Socket errors: (.*)", out)
    result["socket_errors"] = errors.group(1) if errors else "none"  # type: ignore[assignment]
    result["server_cpu_s"] = cpu
    result["requests_per_cpu_s"] = result["requests"] / cpu if cpu > 0 else math.nan
    return result


def failures(name: str, result: dict[str, Any]) -> list[str]:
    """Why a measurement does not count: non-2xx answers, socket errors, or no request at all."""
    problems = []
    if result["non_2xx"]:
        problems.append(f"{name}: {result['non_2xx']:.0f} non-2xx answers of {result['requests']:.0f}")
    if result["socket_errors"] != "none":
        problems.append(f"{name}: socket errors {result['socket_errors']}")
    if not result["requests"]:
        problems.append(f"{name}: no request answered")
    return problems


def rotate_script(path: Path, prefix: str, ids: list[int]) -> Path:
    path.write_text(
        "local ids = {" + ",".join(map(str, ids)) + "}\nlocal i = 0\n"
        "request = function()\n  i = i % #ids + 1\n"
        f'  return wrk.format("GET", "{prefix}" .. ids[i])\nend\n'
    )
    return path


def post_script(path: Path, body: dict[str, Any]) -> Path:
    payload = json.dumps(body).replace("\\", "\\\\").replace('"', '\\"')
    path.write_text(f'wrk.method = "POST"\nwrk.body = "{payload}"\nwrk.headers["Content-Type"] = "application/json"\n')
    return path


def nginx_config(root: Path, port: int, workers: int, scratch: Path) -> Path:
    config = scratch / "nginx.conf"
    config.write_text(f"""
worker_processes {workers};
pid {scratch}/nginx.pid;
error_log {scratch}/nginx-error.log warn;
daemon off;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {scratch}/client_body;
    proxy_temp_path {scratch}/proxy;
    fastcgi_temp_path {scratch}/fastcgi;
    uwsgi_temp_path {scratch}/uwsgi;
    scgi_temp_path {scratch}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location /samples/ {{ alias {root}/; default_type image/png; }}
    }}
}}
""")
    return config


def prepare(settings: Settings, samples: int) -> tuple[str, str, list[int], dict[int, Path]]:
    """An API key, a dataset, a job and ``samples`` sample PNGs (real BreastMNIST images) in the store."""
    settings.ensure_dirs()
    migrate.upgrade(settings.database_url)
    db, store = Database(settings.database_url), ArtifactStore(settings.artifacts)
    with db.session() as session:
        key = create_api_key(session, name="bench")
    with np.load(settings.data_dir / "breastmnist.npz") as data:
        images, labels = data["train_images"][:samples], data["train_labels"][:samples, 0]
    ids: list[int] = []
    files: dict[int, Path] = {}
    with db.session() as session:
        owner = "bench"
        dataset = Dataset(id=str(uuid.uuid4()), owner=owner, name="bench", format="npz", sha256="0" * 64,
                          size_bytes=0, channels=1, height=28, width=28, num_classes=2, num_images=len(images),
                          class_names=["malignant", "normal_or_benign"], storage_path="datasets/none")  # fmt: skip
        job_id = str(uuid.uuid4())
        session.add(dataset)
        session.add(Job(id=job_id, owner=owner, dataset_id=dataset.id, spec={"class_names": dataset.class_names},
                        queue="gpu", status="succeeded", max_attempts=1, out_dir=f"jobs/{job_id}"))  # fmt: skip
        session.commit()
        for index, (image, label) in enumerate(zip(images, labels, strict=True)):
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="PNG")
            target = store.job_dir(job_id) / "samples" / f"real-{index}.png"
            store.write_bytes(target, buffer.getvalue())
            sample = add_sample(session, job_id=job_id, source_key=f"real:{index}", kind="real", label=int(label),
                                source_index=index, width=28, height=28, path=store.relative(target))  # fmt: skip
            ids.append(sample.id)
            files[sample.id] = target
    db.dispose()
    return key, dataset.id, ids, files


def server_command(server: str, port: int, workers: int) -> list[str]:
    if server == "granian":
        return [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port),
                "--workers", str(workers), "--log-level", "warning", "--no-ws", "app.asgi:app"]  # fmt: skip
    return [sys.executable, "-m", "uvicorn", "app.asgi:app", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--no-access-log", "--log-level", "warning"]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement (1..120)")
    parser.add_argument("--api-workers", type=int, default=2, help="uvicorn processes (nginx gets as many)")
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--server", choices=["granian", "uvicorn"], default="granian", help="as genmix serve")
    parser.add_argument("--mode", choices=["auto", "production", "embedded"], default="auto")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    duration = max(1, min(args.duration, 120))
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed: apt-get install -y nginx wrk")

    scratch = Path(tempfile.mkdtemp(prefix="genmix-bench-"))
    processes: list[subprocess.Popen[bytes]] = []
    mode = args.mode
    database, prefix = None, f"genmix_bench_{uuid.uuid4().hex[:8]}:"
    if mode in ("auto", "production"):
        try:
            import psycopg
            import redis

            with psycopg.connect(f"{PG}/postgres", autocommit=True, connect_timeout=3) as conn:
                database = f"genmix_bench_{uuid.uuid4().hex[:8]}"
                conn.execute(f'CREATE DATABASE "{database}"')
            redis.Redis.from_url(REDIS, socket_connect_timeout=3).ping()
            mode = "production"
        except Exception as exc:
            if mode == "production":
                raise SystemExit(f"PostgreSQL/Redis not reachable: {exc}") from None
            mode = "embedded"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENMIX_")}
    env.update(GENMIX_STATE_DIR=str(scratch / "state"), GENMIX_DATA_DIR=str(default_data_dir()),
               PYTHONPATH=str(REPO_ROOT))  # fmt: skip
    if mode == "production":
        env.update(GENMIX_DATABASE_URL=f"{PG.replace('postgresql://', 'postgresql+psycopg://')}/{database}",
                   GENMIX_BROKER_URL=REDIS, GENMIX_REDIS_KEY_PREFIX=prefix)  # fmt: skip
    settings = Settings(**{k.removeprefix("GENMIX_").lower(): v for k, v in env.items() if k.startswith("GENMIX_")})
    try:
        key, dataset_id, ids, files = prepare(settings, args.samples)
        # Outside the mode-700 scratch folder: nginx's workers run unprivileged (as root, nginx drops them to
        # `nobody`) and must be able to read what they serve; the PNGs are the benchmark's public test data.
        nginx_root = Path(tempfile.mkdtemp(prefix="genmix-bench-nginx-"))
        nginx_root.chmod(0o755)
        for sample_id, path in files.items():
            shutil.copyfile(path, nginx_root / str(sample_id))
            (nginx_root / str(sample_id)).chmod(0o644)
        api_port, nginx_port = free_port(), free_port()
        processes.append(subprocess.Popen(
            ["nginx", "-c", str(nginx_config(nginx_root, nginx_port, args.api_workers, scratch)), "-p", str(scratch)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))  # fmt: skip
        processes.append(subprocess.Popen(server_command(args.server, api_port, args.api_workers),
                                          env=env, cwd=REPO_ROOT, start_new_session=True))  # fmt: skip
        try:
            wait_http(f"http://127.0.0.1:{nginx_port}/samples/{ids[0]}", 60, processes[0])
            wait_http(f"http://127.0.0.1:{api_port}/healthz", 60, processes[1])
        except ServiceError as exc:
            raise SystemExit(str(exc)) from None
        auth = {"Authorization": f"Bearer {key}"}
        for name, url, headers in (
            ("GenMix", f"http://127.0.0.1:{api_port}/samples/{ids[0]}", auth),
            ("nginx", f"http://127.0.0.1:{nginx_port}/samples/{ids[0]}", {}),
        ):
            probe = httpx.get(url, headers=headers)
            if probe.status_code != 200 or probe.content != files[ids[0]].read_bytes():
                raise SystemExit(f"{name} does not serve the sample: {probe.status_code} {probe.text[:200]!r}")

        gets = rotate_script(scratch / "get.lua", "/samples/", ids)
        wrk(f"http://127.0.0.1:{nginx_port}", gets, 2, {})  # warm-up
        wrk(f"http://127.0.0.1:{api_port}", gets, 2, auth)
        nginx = wrk(f"http://127.0.0.1:{nginx_port}", gets, duration, {}, server=processes[0])
        api = wrk(f"http://127.0.0.1:{api_port}", gets, duration, auth, server=processes[1])

        spec = {
            "dataset_id": dataset_id,
            "arms": ["baseline", "genmix"],
            "seeds": [0, 1, 2],
            "queue": "gpu",
            "classifier_settings": {"epochs": 2},
            "generator_settings": {"dcgan": {"iterations": 40}},
        }
        post = post_script(scratch / "post.lua", spec)
        wrk(f"http://127.0.0.1:{api_port}/jobs", post, 2, auth)  # warm-up: connection pools, publisher
        db = Database(settings.database_url)
        with db.session() as session:
            before = session.query(Job).count()
        posts = wrk(f"http://127.0.0.1:{api_port}/jobs", post, duration, auth, server=processes[1])
        with db.session() as session:
            created = session.query(Job).count() - before
        db.dispose()
        accepted = posts["requests"] - posts["non_2xx"]
        figures = {
            "mode": mode,
            "api_workers": args.api_workers,
            "duration_s": duration,
            "connections": 32,
            "nginx_get": nginx,
            "api_get": api,
            "ratio": api["requests_per_s"] / nginx["requests_per_s"],
            "ratio_per_cpu_s": api["requests_per_cpu_s"] / nginx["requests_per_cpu_s"],
            "post_jobs": posts,
            "post_accepted_per_s": accepted / duration,
            "post_created_rows": created,
        }
    finally:
        for process in reversed(processes):
            stop_process(process, timeout=20)
        if database is not None:
            import psycopg
            import redis

            with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            client = redis.Redis.from_url(REDIS)
            keys = list(client.scan_iter(match=f"{prefix}*"))
            if keys:
                client.delete(*keys)
        shutil.rmtree(scratch, ignore_errors=True)
        if "nginx_root" in locals():
            shutil.rmtree(nginx_root, ignore_errors=True)

    stack = "PostgreSQL + Redis" if mode == "production" else "SQLite + filesystem"
    print(
        f"GenMix API benchmark ({mode}: {stack} broker; {args.api_workers} {args.server} workers vs nginx "
        f"worker_processes {args.api_workers}; wrk 2 threads, 32 connections, {duration} s each; "
        f"{os.cpu_count()} CPUs shared with the load generator)"
    )
    print("| measurement | requests/s | requests/CPU-s (server CPU s) | p50 ms | p99 ms | target |")
    print("|---|---:|---:|---:|---:|---|")
    print(f"| nginx GET /samples/{{id}} (static PNG) | {nginx['requests_per_s']:.0f} | "
          f"{nginx['requests_per_cpu_s']:.0f} ({nginx['server_cpu_s']:.1f}) | {nginx['p50_ms']:.2f} | "
          f"{nginx['p99_ms']:.2f} | |")  # fmt: skip
    print(f"| GenMix GET /samples/{{id}} | {api['requests_per_s']:.0f} | {api['requests_per_cpu_s']:.0f} "
          f"({api['server_cpu_s']:.1f}) | {api['p50_ms']:.2f} | {api['p99_ms']:.2f} | "
          f"p99 < {TARGETS['p99_ms']:.0f} ms |")  # fmt: skip
    print(f"| ratio GenMix / nginx | {figures['ratio']:.2f}x | {figures['ratio_per_cpu_s']:.2f}x | | | "
          f"≥ {TARGETS['ratio']}x |")  # fmt: skip
    print(f"| GenMix POST /jobs accepted | {figures['post_accepted_per_s']:.0f} | "
          f"{accepted / posts['server_cpu_s']:.0f} ({posts['server_cpu_s']:.1f}) | {posts['p50_ms']:.2f} | "
          f"{posts['p99_ms']:.2f} | ≥ {TARGETS['post_per_s']:.0f}/s |")  # fmt: skip
    print(
        f"(POST: {accepted:.0f} answered 202 in the timed run, {created} job rows committed meanwhile; "
        f"non-2xx {posts['non_2xx']:.0f}; GET non-2xx {api['non_2xx']:.0f}; socket errors {api['socket_errors']})"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    met = (figures["ratio"] >= TARGETS["ratio"] and api["p99_ms"] < TARGETS["p99_ms"]
           and figures["post_accepted_per_s"] >= TARGETS["post_per_s"])  # fmt: skip
    print("targets met" if met else "targets NOT met")
    problems = failures("nginx GET", nginx) + failures("GenMix GET", api) + failures("GenMix POST /jobs", posts)
    if created < accepted:
        problems.append(f"POST /jobs: {accepted:.0f} accepted but only {created} job rows committed")
    if problems:
        print("FAILED: " + "; ".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
