"""Cancelling and resuming at the edges (issue 11, item 15 and the new user's list), through the session's worker:
a cancel acknowledged during the last stage cancels the job, a stage that starts fresh on a redelivered job
logs no ``resumed`` event, a job that fails before training writes no sample PNGs, and the worker's Celery
behaviour on a lost broker connection is set explicitly."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from core.db.orm import Job, JobEvent, Sample
from core.db.session import Database
from core.queue import celery_config
from core.settings import Settings
from service.helpers import WorkerProcess, quick_job, wait_for_status
from workers.observer import DbObserver

TERMINAL = {"succeeded", "failed", "cancelled"}


def test_cancel_during_the_figures_stage_cancels_the_job(client: TestClient, alice: dict[str, str],
                                                         dataset: dict[str, Any], db: Database,
                                                         worker: WorkerProcess) -> None:  # fmt: skip
    response = client.post("/jobs", headers=alice, json=quick_job(dataset["id"], arms=["baseline"], figures=True))
    job_id = response.json()["id"]
    deadline = time.monotonic() + 240
    while True:  # catch the last stage as soon as it starts
        with db.session() as session:
            status, stage = session.execute(select(Job.status, Job.stage).where(Job.id == job_id)).one()
        if stage == "figures" or status in TERMINAL or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert stage == "figures", (status, stage)
    cancel = client.post(f"/jobs/{job_id}/cancel", headers=alice)
    assert cancel.status_code == 202, cancel.text  # acknowledged: so the job must not end "succeeded"
    final = wait_for_status(client, alice, job_id, TERMINAL, 120, worker)
    assert final["status"] == "cancelled", final
    assert final["results"]["runs"], "what the job finished is kept"


class _Monitor:
    stop_requested = threading.Event()


class _Samples:
    def __init__(self) -> None:
        self.real = 0

    def real_samples(self) -> None:
        self.real += 1


def test_only_stages_that_resume_log_a_resumed_event(db: Database, dataset: dict[str, Any]) -> None:
    job_id = str(uuid.uuid4())
    with db.session() as session:
        session.add(Job(id=job_id, owner="faults", dataset_id=dataset["id"], spec={}, queue="gpu", status="running",
                        attempts=2, max_attempts=3, out_dir=f"jobs/{job_id}"))  # fmt: skip
        session.commit()
    samples = _Samples()
    observer = DbObserver(db, job_id, 2, ["a", "b"], _Monitor(), None, samples, 0.0)  # type: ignore[arg-type]
    observer.stage("generator dcgan seed 0", 0, 3)
    observer.resumed(120, 300)  # what a trainer calls when it picks up its checkpoint (TrainHooks.resumed)
    observer.progress(130, 300, {"loss": 1.0})
    observer.stage("classifier baseline seed 0", 1, 3)
    observer.progress(0, 40, {"loss": 1.0})  # starts fresh: nothing was resumed
    observer.progress(10, 40, {"loss": 1.0})
    with db.session() as session:
        resumed = [e.data for e in session.scalars(select(JobEvent).where(JobEvent.job_id == job_id,
                                                                           JobEvent.kind == "resumed"))]  # fmt: skip
        session.delete(session.get(Job, job_id))
        session.commit()
    assert [(d["stage"], d["step"]) for d in resumed] == [("generator dcgan seed 0", 120)]
    assert samples.real == 1  # real samples are written once, when training first reports


def test_a_job_failing_before_it_trains_writes_no_samples(client: TestClient, alice: dict[str, str],
                                                          dataset: dict[str, Any], db: Database,
                                                          worker: WorkerProcess) -> None:  # fmt: skip
    """The new user's list: a job that failed before it trained anything still wrote 16 sample PNGs. Here:
    Textual Inversion on a worker that has no Stable Diffusion pipeline (GENMIX_TI_PRETRAINED unset)."""
    spec = quick_job(dataset["id"], generators=["textual_inversion"], generator_settings={}, samples_per_class=8)
    response = client.post("/jobs", headers=alice, json=spec)
    assert response.status_code == 202, response.text
    final = wait_for_status(client, alice, response.json()["id"], TERMINAL, 180, worker)
    assert final["status"] == "failed" and "Stable Diffusion" in final["error"], final
    with db.session() as session:
        count = session.scalar(select(func.count()).select_from(Sample).where(Sample.job_id == final["id"]))
    assert count == 0


def test_the_connection_loss_behaviour_is_explicit(settings: Settings) -> None:
    """Celery 6 will cancel running tasks when the broker connection is lost; GenMix keeps them running (their
    state is in the database, and a lost message is re-published by the sweep)."""
    config = celery_config(settings)
    assert config["worker_cancel_long_running_tasks_on_connection_loss"] is False
