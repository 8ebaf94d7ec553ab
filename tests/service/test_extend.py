"""Extending an ended job (``extends``): its finished runs are reused, only what the extension adds trains, and an
extension that would reuse runs of another design, dataset, owner or a job still running is refused at the door,
leaving no job behind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from core.db.orm import Job, JobUnit, Run
from core.db.session import Database
from core.settings import Settings
from service.helpers import WorkerProcess, quick_job, sse, wait_for, wait_for_status

TERMINAL = {"succeeded", "failed", "cancelled"}
MARK = "written into the ended job's record on disk"


def _finished(
    client: TestClient, headers: dict[str, str], spec: dict[str, Any], worker: WorkerProcess
) -> dict[str, Any]:
    response = client.post("/jobs", headers=headers, json=spec)
    assert response.status_code == 202, response.text
    job = wait_for_status(client, headers, response.json()["id"], TERMINAL, 300, worker)
    assert job["status"] == "succeeded", (job["error"], worker.log()[-3000:])
    return job


def _folder(db: Database, settings: Settings, job_id: str) -> Path:
    with db.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return settings.artifacts / job.out_dir


def _job_count(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(Job)) or 0


@pytest.fixture(scope="module")
def ended(client: TestClient, alice: dict[str, str], dataset: dict[str, Any], worker: WorkerProcess,
          db: Database, settings: Settings) -> dict[str, Any]:  # fmt: skip
    """A finished one-seed job whose baseline record on disk carries a mark: a reused record keeps it, a record
    trained again (the same numbers, training being deterministic) could not."""
    job = _finished(client, alice, quick_job(dataset["id"], arms=["baseline", "genmix"], seeds=[0]), worker)
    record_path = _folder(db, settings, job["id"]) / "runs" / "baseline-seed0.json"
    record = json.loads(record_path.read_text())
    record_path.write_text(json.dumps({**record, "mark": MARK}))
    return job


def test_extension_reuses_the_finished_runs_and_trains_only_what_it_adds(
    client: TestClient, alice: dict[str, str], dataset: dict[str, Any], worker: WorkerProcess, db: Database,
    settings: Settings, ended: dict[str, Any],
) -> None:  # fmt: skip
    spec = quick_job(dataset["id"], arms=["baseline", "genmix", "mixup"], seeds=[0, 1], extends=ended["id"])
    job = _finished(client, alice, spec, worker)
    assert job["spec"]["extends"] == ended["id"]
    with db.session() as session:
        runs = {run.run_id: run.record for run in session.scalars(select(Run).where(Run.job_id == job["id"]))}
        parent_runs = {run.run_id: run.record for run in session.scalars(select(Run).where(Run.job_id == ended["id"]))}
    reused = {"baseline-seed0", "genmix-dcgan-seed0"}
    assert reused <= set(parent_runs) and set(runs) == reused | {
        "mixup-seed0", "baseline-seed1", "genmix-dcgan-seed1", "mixup-seed1"}  # fmt: skip
    assert runs["baseline-seed0"]["mark"] == MARK  # read from the copied file, not trained again
    assert runs["genmix-dcgan-seed0"] == parent_runs["genmix-dcgan-seed0"]
    events = sse(client, alice, job["id"], follow=False)
    extended = [data for kind, data in events if kind == "extended"]
    assert len(extended) == 1 and extended[0]["extends"] == ended["id"] and extended[0]["runs_reused"] == 2
    finished = sorted(data["run_id"] for kind, data in events if kind == "run_finished")
    assert finished == ["baseline-seed1", "genmix-dcgan-seed1", "mixup-seed0", "mixup-seed1"]
    # the reused units never ran (planned finished: no attempt, never started); the added ones did
    with db.session() as session:
        units = {u.key: u for u in session.scalars(select(JobUnit).where(JobUnit.job_id == job["id"]))}
    ran = {key for key, unit in units.items() if unit.attempts > 0 or unit.started_at is not None}
    assert all(unit.status == "succeeded" for unit in units.values())
    reused_units = {"generator:dcgan:0", *(f"classifier:{rid}" for rid in reused)}
    assert reused_units < set(units) and set(units) - ran == reused_units, (sorted(units), sorted(ran))
    # the results cover both seeds, and the ended job's folder is as it was
    results = json.loads((_folder(db, settings, job["id"]) / "results.json").read_text())
    assert sorted(r["run_id"] for r in results["records"]) == sorted(runs)
    assert not (_folder(db, settings, ended["id"]) / "runs" / "mixup-seed0.json").exists()
    synthetic = client.get("/samples", headers=alice, params={"job_id": job["id"], "kind": "synthetic", "limit": 500})
    assert {s["seed"] for s in synthetic.json()["data"]} == {0, 1}


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        ({"classifier_settings": {"epochs": 3, "batch_size": 32}}, 422, "classifier.epochs: 2 in the job extended, 3"),
        ({"beta": 2.0}, 422, "beta: 1.0 in the job extended, 2.0 asked"),
        ({"synthetic_ratio": 1.0}, 422, "synthetic_ratio: 0.5 in the job extended, 1.0 asked"),
        ({"extends": "00000000-0000-4000-8000-000000000000"}, 404, "job to extend not found"),
    ],
)
def test_extension_of_another_design_is_refused_at_the_door(
    client: TestClient, alice: dict[str, str], dataset: dict[str, Any], db: Database, ended: dict[str, Any],
    change: dict[str, Any], status: int, words: str,
) -> None:  # fmt: skip
    before = _job_count(db)
    spec = {**quick_job(dataset["id"], seeds=[0, 1], extends=ended["id"]), **change}
    response = client.post("/jobs", headers=alice, json=spec)
    assert response.status_code == status and words in response.json()["detail"], response.text
    assert _job_count(db) == before


def test_extension_of_someone_elses_job_or_dataset_is_refused(
    client: TestClient, alice: dict[str, str], bob: dict[str, str], dataset: dict[str, Any], db: Database,
    data_dir: Path, ended: dict[str, Any],
) -> None:  # fmt: skip
    from service.helpers import upload_breast_slice

    before = _job_count(db)
    theirs = upload_breast_slice(client, bob, data_dir)
    response = client.post("/jobs", headers=bob, json=quick_job(theirs["id"], extends=ended["id"]))
    assert response.status_code == 404 and "job to extend" in response.json()["detail"]
    other = upload_breast_slice(client, alice, data_dir)
    response = client.post("/jobs", headers=alice, json=quick_job(other["id"], extends=ended["id"]))
    assert response.status_code == 422 and "ran on another dataset" in response.json()["detail"], response.text
    assert _job_count(db) == before
    for headers, made in ((bob, theirs), (alice, other)):
        assert client.delete(f"/datasets/{made['id']}", headers=headers).status_code == 204


def test_extension_of_a_job_still_running_is_refused(
    client: TestClient, alice: dict[str, str], dataset: dict[str, Any], worker: WorkerProcess, db: Database,
) -> None:  # fmt: skip
    long = {"dcgan": {"iterations": 1_000_000, "batch_size": 16, "ngf": 8, "ndf": 8, "log_every": 5}}
    job_id = client.post("/jobs", headers=alice, json=quick_job(dataset["id"], generator_settings=long)).json()["id"]
    try:
        before = _job_count(db)
        response = client.post("/jobs", headers=alice, json=quick_job(dataset["id"], generator_settings=long,
                                                                      seeds=[0, 1], extends=job_id))  # fmt: skip
        assert response.status_code == 409 and "extend it once it has ended" in response.json()["detail"]
        assert _job_count(db) == before
    finally:
        assert client.post(f"/jobs/{job_id}/cancel", headers=alice).status_code == 202
        wait_for(lambda: client.get(f"/jobs/{job_id}", headers=alice).json()["status"] in TERMINAL, 120, 0.2,
                 "the long job to be cancelled")  # fmt: skip
