"""One study on one worker and on two: the wall-time ratio and the scheduling cost per unit (issue 13).

The same small study (``--seeds`` seeds, DCGAN and StyleGAN at the ``quick`` profile with tiny networks and
iterations, the baseline and GenMix arms, a small CNN) runs as one job twice against a fresh PostgreSQL database on
127.0.0.1:5432 and a private key prefix on the Redis at 127.0.0.1:6379 (both removed afterwards): first with
one ``genmix worker`` process, then with two, each with one torch thread (``GENMIX_TORCH_THREADS=1``) and one
task at a time. Workers are started and ready before the job is posted; the wall time runs from ``POST /jobs``
to ``succeeded``. The two jobs must give the same results (same seeds).

Scheduling cost per unit, two measures:

* one worker: (job wall time − the time spent inside units) / units — claim, publish, unit bookkeeping, the
  job's plan, results and wrap-up (the coordinator runs every unit itself, so there is no waiting);
* two workers: the gap between a worker finishing a unit and starting its next one while a ready unit was
  waiting — message delivery, the pool process started for it, the claim (the median and the mean).

    python bench/fanout.py [--seeds 3] [--json out.json]

Targets: ratio ≤ 0.6, cost < 0.5 s per unit. On a machine with two cores shared with other work the ratio
says as much about the neighbours as about the scheduler: the figures in docs/BENCHMARKS.md say what ran.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import redis

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests"))

from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import select  # noqa: E402
from support.data import breast_slice  # noqa: E402

from app.main import create_app  # noqa: E402
from app.security import create_api_key  # noqa: E402
from cli.processes import stop_process  # noqa: E402
from core.db import migrate  # noqa: E402
from core.db.orm import JobUnit, Run  # noqa: E402
from core.db.session import Database  # noqa: E402
from core.settings import Settings, default_data_dir  # noqa: E402
from models.profiles import GENERATOR_PROFILES  # noqa: E402

PG = "postgresql://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379/14"
TARGETS = {"ratio": 0.6, "cost_s": 0.5}


def study(dataset_id: str, seeds: int) -> dict[str, Any]:
    return {
        "dataset_id": dataset_id,
        "generators": ["dcgan", "stylegan"],
        "arms": ["baseline", "genmix"],
        "profile": "quick",
        "seeds": list(range(seeds)),
        "classifier": "smallcnn",
        "classifier_settings": {"epochs": 4, "batch_size": 32},
        "generator_settings": {
            "dcgan": {"iterations": 200, "batch_size": 16, "ngf": 8, "ndf": 8, "log_every": 10},
            "stylegan": {**GENERATOR_PROFILES["stylegan"]["tiny"], "iterations": 40},  # the tests' network
        },
        "samples_per_class": 2,
        "figures": False,
    }


class Worker:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "cli.main", "worker", "--queues", "cpu"], env=env,
                                            cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)  # fmt: skip

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while b" ready." not in self.log.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.3)

    def stop(self) -> None:
        stop_process(self.process, timeout=30)


def run_job(api: TestClient, headers: dict[str, str], spec: dict[str, Any], db: Database) -> dict[str, Any]:
    started = time.monotonic()
    job_id = api.post("/jobs", headers=headers, json=spec).json()["id"]
    while True:
        state = api.get(f"/jobs/{job_id}", headers=headers).json()
        if state["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.2)
    wall = time.monotonic() - started
    if state["status"] != "succeeded":
        raise RuntimeError(f"job {job_id} {state['status']}: {state['error']}")
    with db.session() as session:
        units = list(session.scalars(select(JobUnit).where(JobUnit.job_id == job_id)))
        records = dict(session.execute(select(Run.run_id, Run.record).where(Run.job_id == job_id)).all())
        session.expunge_all()
    return {"id": job_id, "wall_s": wall, "state": state, "units": units, "records": records}


def inside_units(units: list[JobUnit]) -> float:
    return sum((u.finished_at - u.started_at).total_seconds() for u in units if u.started_at and u.finished_at)


def _records(run: dict[str, Any]) -> dict[str, Any]:
    return {rid: (record["metrics"], record["test_predictions"]) for rid, record in run["records"].items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    name = f"genmix_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{PG.replace('postgresql://', 'postgresql+psycopg://')}/{name}"
    prefix = f"genmix_bench_{uuid.uuid4().hex[:10]}:"
    state_dir = Path(tempfile.mkdtemp(prefix="genmix-fanout-"))
    genmix_env = {
        "GENMIX_DATABASE_URL": url,
        "GENMIX_BROKER_URL": REDIS,
        "GENMIX_REDIS_KEY_PREFIX": prefix,
        "GENMIX_STATE_DIR": str(state_dir),
        "GENMIX_ARTIFACT_ROOT": str(state_dir / "artifacts"),
        "GENMIX_TORCH_THREADS": "1",
        "GENMIX_WORKER_CONCURRENCY": "1",
        "GENMIX_DATA_DIR": str(os.environ.get("GENMIX_DATA_DIR") or default_data_dir()),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENMIX_")} | genmix_env
    env["PYTHONPATH"] = str(REPO_ROOT)
    workers: list[Worker] = []
    load_before = os.getloadavg()
    db = Database(url)
    try:
        migrate.upgrade(url)
        settings = Settings(**{k.removeprefix("GENMIX_").lower(): v for k, v in genmix_env.items()})
        with db.session() as session:
            headers = {"Authorization": f"Bearer {create_api_key(session, name='bench')}"}
        with TestClient(create_app(settings)) as api:
            data = breast_slice(Path(genmix_env["GENMIX_DATA_DIR"]))
            dataset = api.post("/datasets", headers=headers, files={"file": ("breast.npz", data)},
                               data={"name": "breast-slice"}).json()  # fmt: skip
            spec = study(dataset["id"], args.seeds)
            runs = {}
            for count in (1, 2):
                while len(workers) < count:
                    workers.append(Worker(env, state_dir / f"worker-{len(workers)}.log"))
                for worker in workers:
                    worker.wait_ready()
                runs[count] = run_job(api, headers, spec, db)
                print(f"{count} worker(s): {runs[count]['wall_s']:.1f} s, {len(runs[count]['units'])} units",
                      flush=True)  # fmt: skip
    finally:
        for worker in workers:
            worker.stop()
        db.dispose()
        client = redis.Redis.from_url(REDIS)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    one, two = runs[1], runs[2]
    n = len(one["units"])
    cost_one = (one["wall_s"] - inside_units(one["units"])) / n
    gaps = handover(two["units"])
    report = {
        "units": n,
        "seeds": args.seeds,
        "wall_1_s": round(one["wall_s"], 2),
        "wall_2_s": round(two["wall_s"], 2),
        "ratio": round(two["wall_s"] / one["wall_s"], 3),
        "inside_units_1_s": round(inside_units(one["units"]), 2),
        "inside_units_2_s": round(inside_units(two["units"]), 2),
        "cost_per_unit_1_s": round(cost_one, 3),
        "handover_2_median_s": round(statistics.median(gaps), 3) if gaps else None,
        "handover_2_mean_s": round(statistics.fmean(gaps), 3) if gaps else None,
        "handovers": len(gaps),
        "units_per_host_2": _per_host(two["units"]),
        "same_results": _records(one) == _records(two),
        "critical_path_s": round(critical_path(one["units"]), 2),
        "timeline_2": timeline(two["units"]),
        "cpus": os.cpu_count(),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "targets": TARGETS,
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


def critical_path(units: list[JobUnit]) -> float:
    """The longest chain of unit durations through the dependencies (a lower bound on any wall time)."""
    took = {u.key: (u.finished_at - u.started_at).total_seconds() for u in units if u.started_at and u.finished_at}
    deps = {u.key: list(u.deps) for u in units}
    memo: dict[str, float] = {}

    def longest(key: str) -> float:
        if key not in memo:
            memo[key] = took.get(key, 0.0) + max((longest(d) for d in deps[key]), default=0.0)
        return memo[key]

    return max((longest(u.key) for u in units), default=0.0)


def timeline(units: list[JobUnit]) -> list[list[Any]]:
    """Per unit: key, pid, start and end (s since the first start), and when it became ready."""
    spans = [u for u in units if u.started_at and u.finished_at]
    if not spans:
        return []
    zero = min(u.started_at for u in spans)
    finished = {u.key: u.finished_at for u in spans}
    rows = []
    for u in sorted(spans, key=lambda u: u.started_at):
        ready = max((finished[d] for d in u.deps), default=zero)
        times = [(t - zero).total_seconds() for t in (u.started_at, u.finished_at, ready)]
        rows.append([u.key, u.worker_pid, *(round(t, 2) for t in times)])
    return rows


def _per_host(units: list[JobUnit]) -> dict[str, int]:
    found: dict[str, int] = {}
    for unit in units:
        found[str(unit.worker_host)] = found.get(str(unit.worker_host), 0) + 1
    return found


def handover(units: list[JobUnit]) -> list[float]:
    """The gaps between a worker finishing one unit and claiming its next one, where that next unit was ready
    (every dependency finished) by the time the first one finished: delivery, pool process, claim, bookkeeping.
    Both workers run on this one host, so they are told apart by pid: the coordinator runs its units in one
    process (the pid with the most units), the other worker in a fresh pool process per unit."""
    spans = [u for u in units if u.started_at and u.finished_at]
    if not spans:
        return []
    finished = {u.key: u.finished_at for u in spans}
    pids: dict[int | None, int] = {}
    for unit in spans:
        pids[unit.worker_pid] = pids.get(unit.worker_pid, 0) + 1
    coordinator = max(pids, key=lambda pid: pids[pid])
    lanes = [sorted((u for u in spans if (u.worker_pid == coordinator) == mine), key=lambda u: u.started_at)
             for mine in (True, False)]  # fmt: skip
    gaps = []
    for lane in lanes:
        for before, after in zip(lane, lane[1:], strict=False):
            ready_at = max((finished[dep] for dep in after.deps), default=None)
            if ready_at is None or ready_at <= before.finished_at:
                gaps.append((after.started_at - before.finished_at).total_seconds())
    return gaps


if __name__ == "__main__":
    main()
