"""One job, many workers (issue 13): two real Celery workers on two "hosts" take the units of one job.

Each worker runs in its own UTS, PID and mount namespace (``unshare``, root only), so it has its own host name
and its own process ids: to the service they are two machines that share PostgreSQL, Redis and the artifact
root, as a deployment does. Neither can see the other's processes, so a unit's liveness is told by its
heartbeat alone (``GENMIX_STALE_AFTER`` is a few seconds here). The module has its own database and Redis key
prefix, so the session's worker takes none of these units.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from support.processes import REPO_ROOT

from app.main import create_app
from core.db.orm import Job, JobEvent, JobUnit, Run
from core.db.session import Database
from service.helpers import (
    WorkerProcess,
    api_key_headers,
    private_service_env,
    quick_job,
    settings_from_env,
    subprocess_env,
    upload_breast_slice,
    wait_for,
    wait_for_status,
)

TERMINAL = {"succeeded", "failed", "cancelled"}
HOSTS = ("genmix-host-a", "genmix-host-b")


def _namespaces_work() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--uts", "--pid", "--fork", "--mount-proc", "sh", "-c", "hostname probe"],
                           capture_output=True, timeout=30)  # fmt: skip
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(not _namespaces_work(), reason="needs root and unshare (UTS/PID namespaces)")


class HostWorker(WorkerProcess):
    """``genmix worker --queues cpu`` in its own UTS + PID + mount namespace, with host name ``host``."""

    def __init__(self, env: dict[str, str], log_path: Path, host: str) -> None:
        super().__init__(env, log_path)
        self.host = host

    def start(self, wait: bool = True) -> None:
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        script = f'hostname {self.host} && exec "$0" -m cli.main worker --queues cpu'
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                ["unshare", "--uts", "--pid", "--fork", "--mount-proc", "sh", "-c", script, sys.executable],
                env=self.env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        if wait:
            self.wait_ready()

    def kill(self) -> None:
        """SIGKILL the whole worker (Celery parent and its pool child): the machine is lost."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def fanout_env(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[dict[str, str]]:
    state = tmp_path_factory.mktemp("fanout-state")
    with private_service_env(state, data_dir, heartbeat_interval="1", stale_after="6", sweep_interval="3") as env:
        yield env


@pytest.fixture(scope="module")
def fanout_db(fanout_env: dict[str, str]) -> Iterator[Database]:
    database = Database(fanout_env["GENMIX_DATABASE_URL"])
    yield database
    database.dispose()


@pytest.fixture(scope="module")
def api(fanout_env: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(settings_from_env(fanout_env))) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def owner(fanout_db: Database) -> dict[str, str]:
    return api_key_headers(fanout_db, "fanout")


@pytest.fixture(scope="module")
def fanout_dataset(api: TestClient, owner: dict[str, str], data_dir: Path) -> dict[str, Any]:
    return upload_breast_slice(api, owner, data_dir)


@pytest.fixture(scope="module")
def workers(fanout_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, HostWorker]]:
    folder = tmp_path_factory.mktemp("fanout-workers")
    env = subprocess_env(fanout_env)
    found = {host: HostWorker(env, folder / f"{host}.log", host) for host in HOSTS}
    for worker in found.values():
        worker.start(wait=False)
    for worker in found.values():
        worker.wait_ready()
    yield found
    for worker in found.values():
        worker.stop()


def _logs(workers: dict[str, HostWorker]) -> str:
    return "\n".join(f"--- {host}\n{worker.log()[-2500:]}" for host, worker in workers.items())


def _ensure_running(workers: dict[str, HostWorker]) -> None:
    for worker in workers.values():
        if worker.process is None or worker.process.poll() is not None:
            worker.start()


def _units(db: Database, job_id: str) -> list[JobUnit]:
    with db.session() as session:
        rows = list(session.scalars(select(JobUnit).where(JobUnit.job_id == job_id).order_by(JobUnit.position)))
        session.expunge_all()
        return rows


def _unit_events(db: Database, job_id: str) -> list[tuple[datetime, dict[str, Any]]]:
    with db.session() as session:
        rows = session.execute(select(JobEvent.created_at, JobEvent.data).where(
            JobEvent.job_id == job_id, JobEvent.kind == "unit").order_by(JobEvent.id)).all()  # fmt: skip
        return [(at, data) for at, data in rows]


def _records(state: dict[str, Any], db: Database) -> dict[str, Any]:
    """Every run's metrics as the API shows them, and its test predictions per image as the worker recorded them."""
    with db.session() as session:
        stored = dict(session.execute(select(Run.run_id, Run.record).where(Run.job_id == state["id"])).all())
    return {run["run_id"]: (run, stored[run["run_id"]]["metrics"], stored[run["run_id"]]["test_predictions"])
            for run in state["results"]["runs"]}  # fmt: skip


def _no_unit_ran_twice_at_once(db: Database, job_id: str) -> None:
    """Per unit, its claims (``running``) alternate with its endings or re-queues: never two attempts at once."""
    open_attempts: dict[str, int] = {}
    for _, data in _unit_events(db, job_id):
        key, status = data["unit"], data["status"]
        if status == "running":
            assert key not in open_attempts, (key, data, open_attempts)
            open_attempts[key] = data["attempt"]
        else:
            open_attempts.pop(key, None)


TWO_SEEDS = {
    "seeds": [0, 1],
    "arms": ["baseline", "genmix"],
    "generator_settings": {"dcgan": {"iterations": 60, "batch_size": 16, "ngf": 8, "ndf": 8, "log_every": 10}},
}


def test_two_hosts_share_one_job_and_match_a_one_worker_run(api: TestClient, owner: dict[str, str],
                                                           fanout_dataset: dict[str, Any], fanout_db: Database,
                                                           workers: dict[str, HostWorker]) -> None:  # fmt: skip
    # the one-worker run: host b is stopped, host a runs every unit
    workers[HOSTS[1]].stop()
    spec = quick_job(fanout_dataset["id"], **TWO_SEEDS)
    alone = api.post("/jobs", headers=owner, json=spec).json()["id"]
    one = wait_for_status(api, owner, alone, TERMINAL, 400)
    assert one["status"] == "succeeded", (one["error"], _logs(workers))
    assert {unit.worker_host for unit in _units(fanout_db, alone)} == {HOSTS[0]}

    workers[HOSTS[1]].start()
    shared = api.post("/jobs", headers=owner, json=spec).json()["id"]
    two = wait_for_status(api, owner, shared, TERMINAL, 400)
    assert two["status"] == "succeeded", (two["error"], _logs(workers))
    units = _units(fanout_db, shared)
    assert len(units) == 7 and all(unit.status == "succeeded" for unit in units)
    assert {unit.worker_host for unit in units} == set(HOSTS), [(u.key, u.worker_host) for u in units]
    # the two hosts ran units at the same time
    spans = [(u.started_at, u.finished_at, u.worker_host) for u in units if u.started_at and u.finished_at]
    assert any(a0 < b1 and b0 < a1 and ha != hb for a0, a1, ha in spans for b0, b1, hb in spans), spans
    _no_unit_ran_twice_at_once(fanout_db, shared)
    # the same seeds give the same numbers, whichever host trained what
    assert _records(two, fanout_db) == _records(one, fanout_db)
    assert two["results"]["summary"] == one["results"]["summary"]
    listed = {unit["key"]: unit for unit in two["units"]}
    assert set(listed) == {unit.key for unit in units} and all(u["host"] in HOSTS for u in listed.values())


def test_a_killed_host_s_unit_resumes_on_the_other(api: TestClient, owner: dict[str, str],
                                                   fanout_dataset: dict[str, Any], fanout_db: Database,
                                                   workers: dict[str, HostWorker]) -> None:  # fmt: skip
    _ensure_running(workers)
    every = 20
    generator = {"dcgan": {"iterations": 400, "batch_size": 16, "ngf": 8, "ndf": 8, "checkpoint_every": every,
                           "log_every": 5}}  # fmt: skip
    spec = quick_job(fanout_dataset["id"], seeds=[0, 1], arms=["baseline", "genmix"], generator_settings=generator)
    job_id = api.post("/jobs", headers=owner, json=spec).json()["id"]

    def victim_past_a_checkpoint() -> JobUnit | None:
        with fanout_db.session() as session:
            job = session.get(Job, job_id)
            assert job is not None and job.status not in TERMINAL, (job and job.error, _logs(workers))
            coordinator = job.worker_host
        assert coordinator is None or coordinator in HOSTS
        for unit in _units(fanout_db, job_id):
            assert unit.status != "failed", unit.error
            if (unit.kind == "generator" and unit.status == "running" and unit.worker_host != coordinator
                    and coordinator is not None and every + 10 <= (unit.step or 0) <= 300):  # fmt: skip
                return unit
        return None

    victim = wait_for(victim_past_a_checkpoint, 300, 0.1, "a generator unit on the other host past a checkpoint")
    killed_host, killed_step = victim.worker_host, victim.step
    assert killed_host is not None
    workers[killed_host].kill()

    job = wait_for_status(api, owner, job_id, TERMINAL, 400)
    assert job["status"] == "succeeded", (job["error"], _logs(workers))
    assert job["attempts"] == 1  # the coordinator lived: only the unit was taken again
    unit = next(u for u in _units(fanout_db, job_id) if u.key == victim.key)
    assert unit.attempts == 2 and unit.worker_host != killed_host
    assert unit.resumed_step is not None and every <= unit.resumed_step <= (killed_step or 0) + every, unit.resumed_step
    events = [data for _, data in _unit_events(fanout_db, job_id) if data["unit"] == victim.key]
    assert [e["status"] for e in events] == ["running", "queued", "running", "succeeded"], events
    assert events[1]["previous_host"] == killed_host
    _no_unit_ran_twice_at_once(fanout_db, job_id)


def test_cancel_stops_units_on_both_hosts_within_seconds(api: TestClient, owner: dict[str, str],
                                                         fanout_dataset: dict[str, Any], fanout_db: Database,
                                                         workers: dict[str, HostWorker]) -> None:  # fmt: skip
    _ensure_running(workers)
    long = {"dcgan": {"iterations": 1_000_000, "batch_size": 16, "ngf": 8, "ndf": 8, "log_every": 5}}
    spec = quick_job(fanout_dataset["id"], seeds=[0, 1], arms=["baseline", "genmix"], generator_settings=long)
    job_id = api.post("/jobs", headers=owner, json=spec).json()["id"]

    def both_hosts_training() -> bool:
        with fanout_db.session() as session:
            job = session.get(Job, job_id)
            assert job is not None and job.status not in TERMINAL, (job and job.error, _logs(workers))
        running = [u for u in _units(fanout_db, job_id) if u.status == "running" and (u.step or 0) > 0]
        return {u.worker_host for u in running} == set(HOSTS)

    wait_for(both_hosts_training, 300, 0.2, "units training on both hosts")
    asked = time.monotonic()
    assert api.post(f"/jobs/{job_id}/cancel", headers=owner).status_code == 202
    job = wait_for_status(api, owner, job_id, TERMINAL, 60)
    assert job["status"] == "cancelled", (job["error"], _logs(workers))
    stopped = time.monotonic() - asked
    assert stopped < 15, stopped
    before = {(u.key, u.status, u.step) for u in _units(fanout_db, job_id)}
    assert not [u for u in before if u[1] == "running"], before
    time.sleep(3)  # nothing runs on: no unit's step moves after the job ended
    assert {(u.key, u.status, u.step) for u in _units(fanout_db, job_id)} == before


def test_a_killed_coordinator_s_job_is_taken_over_and_keeps_its_finished_units(
    api: TestClient, owner: dict[str, str], fanout_dataset: dict[str, Any], fanout_db: Database,
    workers: dict[str, HostWorker],
) -> None:  # fmt: skip
    _ensure_running(workers)
    every, iterations = 20, 400
    generator = {"dcgan": {"iterations": iterations, "batch_size": 16, "ngf": 8, "ndf": 8,
                           "checkpoint_every": every, "log_every": 5}}  # fmt: skip
    # one seed: the coordinator trains the generator while the other host runs the real-only arms, so the
    # coordinator is caught mid-training with finished units behind it
    spec = quick_job(
        fanout_dataset["id"], seeds=[0], arms=["baseline", "mixup", "genmix"], generator_settings=generator
    )
    job_id = api.post("/jobs", headers=owner, json=spec).json()["id"]

    def coordinator_training_after_a_finished_unit() -> str | None:
        with fanout_db.session() as session:
            job = session.get(Job, job_id)
            assert job is not None and job.status not in TERMINAL, (job and job.error, _logs(workers))
            coordinator = job.worker_host
        units = _units(fanout_db, job_id)
        done = [u for u in units if u.status == "succeeded"]
        mine = [u for u in units if u.status == "running" and u.worker_host == coordinator and u.kind == "generator"
                and every + 10 <= (u.step or 0) <= iterations - 100]  # fmt: skip
        return coordinator if done and mine else None

    coordinator = wait_for(coordinator_training_after_a_finished_unit, 300, 0.1, "the coordinator training a unit")
    finished_before = {u.key: u.finished_at for u in _units(fanout_db, job_id) if u.status == "succeeded"}
    workers[coordinator].kill()

    job = wait_for_status(api, owner, job_id, TERMINAL, 400)
    assert job["status"] == "succeeded", (job["error"], _logs(workers))
    assert job["attempts"] == 2  # the other host's sweep re-queued the job, whose next delivery coordinated it
    with fanout_db.session() as session:
        assert session.get(Job, job_id).worker_host != coordinator
    after = {u.key: u for u in _units(fanout_db, job_id)}
    for key, finished_at in finished_before.items():  # finished units were kept, not run again
        assert after[key].finished_at == finished_at and after[key].attempts == 1, key
    resumed = [u for u in after.values() if u.attempts == 2]
    assert resumed and all(u.worker_host != coordinator for u in resumed)
    assert any(u.resumed_step and u.resumed_step >= every for u in resumed), [(u.key, u.resumed_step) for u in resumed]
    _no_unit_ran_twice_at_once(fanout_db, job_id)
