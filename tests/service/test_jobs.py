"""Jobs end to end through a real Celery worker process: upload → job → progress → results → samples →
artifacts; idempotency and validation; cancelling queued and running jobs; a worker killed mid-training."""

from __future__ import annotations

import io
import json
import os
import signal
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select

from core.db.orm import Job, Run, RunClassMetric
from core.db.session import Database
from service.helpers import WorkerProcess, job_state, quick_job, sse, wait_for, wait_for_status

ALL_ARMS = ["baseline", "mixup", "augmix", "generative", "genmix"]
TERMINAL = {"succeeded", "failed", "cancelled"}
ByKind = dict[str, list[dict[str, Any]]]  # samples or artifacts, by kind


def test_job_spec_is_validated(client: TestClient, alice: dict[str, str], dataset: dict[str, Any]) -> None:
    jobs_before = client.get("/jobs", headers=alice).json()["count"]
    bad = [
        {"arms": ["baseline", "dropout"]},
        {"synthetic_ratio": 0},
        {"alpha": -1},
        {"seeds": [0, 0]},
        {"classifier": "alexnet"},
        {"generator_settings": {"stylegan": {"iterations": 1}}},
        {"generator_settings": {"dcgan": {"iterations": 10**12}}},
        {"generator_settings": {"dcgan": {"iterationz": 10}}},
        {"generator_settings": {"dcgan": {"iterations": "many"}}},
        {"classifier_settings": {"epochs": -5}},
        {"classifier_settings": {"epochs": 10**9}},
        {"classifier_settings": {"optimiser": "sgd"}},
        {"profile": "huge"},
        {"unknown_field": 1},
    ]
    for change in bad:
        response = client.post("/jobs", headers=alice, json={**quick_job(dataset["id"]), **change})
        assert response.status_code == 422, (change, response.text)
    # the reason names the field and the bound, at the door: nothing was stored
    response = client.post("/jobs", headers=alice, json={**quick_job(dataset["id"]), **bad[-4]})
    assert "classifier_settings" in response.text and "epochs" in response.text
    assert client.get("/jobs", headers=alice).json()["count"] == jobs_before
    response = client.post("/jobs", headers=alice, json=quick_job(str(uuid.uuid4())))
    assert response.status_code == 404


def test_queued_job_cancel_and_dataset_in_use(client: TestClient, alice: dict[str, str],
                                              slice_bytes: bytes) -> None:  # fmt: skip
    upload = client.post("/datasets", headers=alice, files={"file": ("b.npz", slice_bytes)}, data={"name": "tmp"})
    dataset_id = upload.json()["id"]
    # nobody serves the gpu queue in the tests: the job stays queued
    job = client.post("/jobs", headers=alice, json=quick_job(dataset_id, queue="gpu")).json()
    assert job["status"] == "queued" and job["queue"] == "gpu"
    assert client.delete(f"/datasets/{dataset_id}", headers=alice).status_code == 409
    cancelled = client.post(f"/jobs/{job['id']}/cancel", headers=alice)
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    assert client.post(f"/jobs/{job['id']}/cancel", headers=alice).status_code == 409
    assert client.delete(f"/datasets/{dataset_id}", headers=alice).status_code == 204
    assert job_state(client, alice, job["id"])["dataset_id"] is None
    listed = client.get("/jobs", headers=alice, params={"status": "cancelled"}).json()
    assert job["id"] in [j["id"] for j in listed["data"]]


@dataclass
class FinishedJob:
    """The all-arms job with figures, run once for this module, and what was seen while it ran."""

    id: str
    submitted: int  # status code of the first POST /jobs
    resubmitted: tuple[int, str]  # the same spec and Idempotency-Key again: (status code, job id)
    conflicting: int  # the same key with another spec
    progress: list[tuple[str, int]]  # (stage, step) seen while polling
    state: dict[str, Any]  # GET /jobs/{id} once it ended


@pytest.fixture(scope="module")
def finished(client: TestClient, alice: dict[str, str], dataset: dict[str, Any],
             worker: WorkerProcess) -> FinishedJob:  # fmt: skip
    spec = quick_job(dataset["id"], arms=ALL_ARMS, figures=True)
    headers = {**alice, "Idempotency-Key": f"e2e-{uuid.uuid4()}"}
    response = client.post("/jobs", headers=headers, json=spec)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    again = client.post("/jobs", headers=headers, json=spec)
    conflicting = client.post("/jobs", headers=headers, json={**spec, "seeds": [1]})
    progress: list[tuple[str, int]] = []

    def ended() -> bool:
        state = job_state(client, alice, job_id)
        if state["progress"]["stage"]:
            progress.append((state["progress"]["stage"], state["progress"]["step"] or 0))
        return state["status"] in TERMINAL

    wait_for(ended, 300, 0.2, "the end-to-end job")
    return FinishedJob(job_id, response.status_code, (again.status_code, again.json().get("id", "")),
                       conflicting.status_code, progress, job_state(client, alice, job_id))  # fmt: skip


@pytest.fixture(scope="module")
def succeeded(finished: FinishedJob, worker: WorkerProcess) -> FinishedJob:
    """The job, which must have succeeded (else every test that reads its outputs fails with its error)."""
    assert finished.state["status"] == "succeeded", (finished.state["error"], worker.log()[-3000:])
    return finished


@pytest.fixture(scope="module")
def samples(client: TestClient, alice: dict[str, str], succeeded: FinishedJob) -> ByKind:
    """The job's samples per kind, every page."""
    out = {}
    for kind in ("real", "synthetic", "genmix"):
        params = {"job_id": succeeded.id, "kind": kind, "limit": 500}
        page = client.get("/samples", headers=alice, params=params).json()
        assert page["count"] == len(page["data"]), kind
        out[kind] = page["data"]
    return out


@pytest.fixture(scope="module")
def artifacts(client: TestClient, alice: dict[str, str], succeeded: FinishedJob) -> ByKind:
    """The job's artifacts by kind."""
    page = client.get(f"/jobs/{succeeded.id}/artifacts", headers=alice, params={"limit": 500}).json()
    by_kind: ByKind = {}
    for artifact in page["data"]:
        by_kind.setdefault(artifact["kind"], []).append(artifact)
    return by_kind


def test_job_submission_is_idempotent(finished: FinishedJob) -> None:
    assert finished.submitted == 202
    assert finished.resubmitted == (200, finished.id)  # same key, same spec: the same job, not a new one
    assert finished.conflicting == 409  # same key, other spec


def test_job_succeeds_once_and_reports_progress(succeeded: FinishedJob) -> None:
    job = succeeded.state
    assert job["attempts"] == 1 and job["error"] is None and job["progress"]["stage"] == "figures"
    assert any(stage.startswith("generator dcgan") for stage, _ in succeeded.progress), succeeded.progress
    assert any(step > 0 for _, step in succeeded.progress), succeeded.progress


def test_job_results_cover_every_arm_with_every_metric(succeeded: FinishedJob) -> None:
    runs = {run["arm"]: run for run in succeeded.state["results"]["runs"]}
    assert sorted(runs) == sorted(ALL_ARMS)
    for run in runs.values():
        for metric in ("accuracy", "macro_f1", "balanced_accuracy", "auc"):
            assert 0.0 <= run[metric] <= 1.0, (run["arm"], metric)
        assert [c["class_name"] for c in run["per_class"]] == ["malignant", "normal_or_benign"]
        assert sum(map(sum, run["confusion_matrix"])) == 40 and run["epochs_trained"] >= 1
    assert runs["genmix"]["generator"] == "dcgan" and runs["baseline"]["generator"] is None


def test_job_summary_has_a_row_per_arm(succeeded: FinishedJob) -> None:
    runs = {run["arm"]: run for run in succeeded.state["results"]["runs"]}
    summary = {row["label"]: row for row in succeeded.state["results"]["summary"]}
    assert {row["arm"] for row in summary.values()} == set(ALL_ARMS) and "GenMix (DCGAN)" in summary
    assert summary["GenMix (DCGAN)"]["macro_f1"]["mean"] == pytest.approx(runs["genmix"]["macro_f1"])
    assert [c["class"] for c in summary["Baseline (Real)"]["per_class"]] == ["malignant", "normal_or_benign"]


def test_job_results_carry_the_verdicts(succeeded: FinishedJob) -> None:
    """GenMix against the baseline, MixUp and DCGAN alone, from the stored run records (one seed: the intervals
    cover the test images only, say so, and give no verdict)."""
    verdicts = succeeded.state["results"]["verdicts"]
    pairs = [(c["target"], c["reference"]) for c in verdicts["comparisons"]]
    assert pairs == [("GenMix (DCGAN)", ref) for ref in ("Baseline (Real)", "MixUp (Real)", "DCGAN alone")]
    assert verdicts["lines"] == [c["line"] for c in verdicts["comparisons"]]
    assert verdicts["plans"] == []
    assert succeeded.state["design_note"].startswith("1 seed × 1 classifier seed: 1 seed unit, too few for a verdict")
    for c in verdicts["comparisons"]:
        assert c["line"].startswith("GenMix (DCGAN)") and c["verdict"] == "one run" and "no verdict" in c["line"]
        assert c["pairs"] == 1 and c["test_images"] == 40 and "test images only" in c["spread"]
        assert c["plan"] is None  # one run has no seed spread to plan from
        assert c["ci_low"] <= c["mean_diff"] <= c["ci_high"] and c["p_value"] <= c["p_holm"] <= 1


def test_job_results_compare_mixup_and_augmix_with_the_baseline(succeeded: FinishedJob) -> None:
    """The real-data augmentations against the baseline, from the same records (one seed: a difference, no
    interval or p)."""
    results = succeeded.state["results"]
    f1 = {(r["arm"], r["seed"]): r["macro_f1"] for r in results["runs"]}
    refs = {(c["target"], c["metric"]): c for c in results["references"]}
    assert set(refs) == {(t, m) for t in ("MixUp (Real)", "AugMix (Real)") for m in ("macro_f1", "auc")}
    for arm, label in (("mixup", "MixUp (Real)"), ("augmix", "AugMix (Real)")):
        c = refs[(label, "macro_f1")]
        assert c["reference"] == "Baseline (Real)" and c["pairs"] == 1
        assert c["mean_diff"] == pytest.approx(f1[(arm, 0)] - f1[("baseline", 0)])
        assert c["interval"] is None and c["p_value"] is None
        assert (
            c["line"]
            == f"{label} vs Baseline (Real): {c['mean_diff'] * 100:+.1f} macro F1 (one paired run: no interval)"
        )


def test_job_runs_are_stored_as_columns(succeeded: FinishedJob, db: Database) -> None:
    with db.session() as session:
        columns = session.execute(select(Run.arm, Run.macro_f1).where(Run.job_id == succeeded.id)).all()
        assert len(columns) == 5 and all(value is not None for _, value in columns)
        per_class = session.scalars(select(RunClassMetric).join(Run).where(Run.job_id == succeeded.id)).all()
        assert len(per_class) == 10


def test_job_event_stream_tells_the_whole_story_and_ends(client: TestClient, alice: dict[str, str],
                                                         succeeded: FinishedJob) -> None:  # fmt: skip
    events = sse(client, alice, succeeded.id)
    kinds = [kind for kind, _ in events]
    assert [d["status"] for k, d in events if k == "status"] == ["queued", "running", "succeeded"]
    assert kinds.count("run_finished") == 5 and "stage" in kinds and "progress" in kinds and kinds[-1] == "end"


def test_job_samples_real_synthetic_and_genmix(samples: ByKind) -> None:
    counts = {kind: len(rows) for kind, rows in samples.items()}
    assert counts["real"] > 0 and counts["synthetic"] >= 6 and 1 <= counts["genmix"] <= 6, counts


def test_genmix_samples_have_lambda_soft_label_and_both_parents(client: TestClient, alice: dict[str, str],
                                                                samples: ByKind) -> None:  # fmt: skip
    for sample in samples["genmix"]:
        assert 0.0 <= sample["lam"] <= 1.0 and abs(sum(sample["soft_label"]) - 1.0) < 1e-4
        assert sample["label"] == int(np.argmax(sample["soft_label"]))
        parents = [client.get(f"/samples/{sample[key]}", headers=alice) for key in
                   ("parent_real_id", "parent_partner_id")]  # fmt: skip
        assert all(p.status_code == 200 for p in parents)
        assert sample["partner_pool"] in ("real", "synthetic")


def test_job_samples_filter_by_label(client: TestClient, alice: dict[str, str], succeeded: FinishedJob) -> None:
    labelled = client.get("/samples", headers=alice, params={"job_id": succeeded.id, "label": 1}).json()["data"]
    assert labelled and all(s["label"] == 1 for s in labelled)


def test_sample_png_is_served_to_its_owner_only(client: TestClient, alice: dict[str, str], bob: dict[str, str],
                                                succeeded: FinishedJob,
                                                samples: ByKind) -> None:  # fmt: skip
    first = samples["genmix"][0]
    png = client.get(f"/samples/{first['id']}", headers=alice)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).size == (28, 28)
    assert client.get(f"/samples/{first['id']}", headers=bob).status_code == 404
    assert client.get("/samples", headers=bob, params={"job_id": succeeded.id}).json()["count"] == 0


def test_job_artifacts_of_every_kind(artifacts: ByKind) -> None:
    kinds = {"figure", "results", "synthetic", "genmix_export", "generator", "checkpoint", "record", "config"}
    assert kinds <= set(artifacts), sorted(artifacts)
    assert any(a["name"].endswith(".safetensors") for a in artifacts["generator"])
    assert any(a["name"].endswith(".safetensors") for a in artifacts["checkpoint"])


def test_job_artifacts_download(client: TestClient, alice: dict[str, str], succeeded: FinishedJob,
                                artifacts: ByKind) -> None:  # fmt: skip
    results = client.get(artifacts["results"][0]["url"].split("testserver")[-1], headers=alice)
    assert results.status_code == 200 and len(json.loads(results.content)["records"]) == 5
    synthetic = client.get(f"/jobs/{succeeded.id}/artifacts/{artifacts['synthetic'][0]['id']}", headers=alice)
    with np.load(io.BytesIO(synthetic.content), allow_pickle=False) as arrays:
        assert arrays["images"].dtype == np.uint8 and set(np.unique(arrays["labels"])) == {0, 1}
    figure = client.get(f"/jobs/{succeeded.id}/artifacts/{artifacts['figure'][0]['id']}", headers=alice)
    assert Image.open(io.BytesIO(figure.content)).format == "PNG"


def test_job_artifacts_are_the_owners_only(client: TestClient, alice: dict[str, str], bob: dict[str, str],
                                           succeeded: FinishedJob,
                                           artifacts: ByKind) -> None:  # fmt: skip
    assert client.get(f"/jobs/{succeeded.id}/artifacts", headers=bob).status_code == 404
    assert client.get(f"/jobs/{succeeded.id}/artifacts/{artifacts['figure'][0]['id']}", headers=bob).status_code == 404
    assert client.get(f"/jobs/{succeeded.id}/artifacts/999999", headers=alice).status_code == 404


def test_finished_job_is_listed_as_succeeded(client: TestClient, alice: dict[str, str],
                                             succeeded: FinishedJob) -> None:  # fmt: skip
    listed = client.get("/jobs", headers=alice, params={"status": "succeeded"}).json()["data"]
    assert succeeded.id in [j["id"] for j in listed]


def test_running_job_is_cancelled_within_seconds(client: TestClient, alice: dict[str, str],
                                                 dataset: dict[str, Any], worker: WorkerProcess) -> None:  # fmt: skip
    long = {"dcgan": {"iterations": 1_000_000, "batch_size": 16, "ngf": 8, "ndf": 8, "log_every": 5}}
    job_id = client.post("/jobs", headers=alice, json=quick_job(dataset["id"], generator_settings=long)).json()["id"]

    def training() -> bool:
        state = job_state(client, alice, job_id)
        assert state["status"] not in TERMINAL, state
        return state["status"] == "running" and (state["progress"]["step"] or 0) > 0

    wait_for(training, 180, 0.2, "the job to be training")
    asked = time.monotonic()
    response = client.post(f"/jobs/{job_id}/cancel", headers=alice)
    assert response.status_code == 202 and response.json()["cancel_requested"]
    job = wait_for_status(client, alice, job_id, TERMINAL, 60, worker)
    stopped_after = time.monotonic() - asked
    assert job["status"] == "cancelled" and job["attempts"] == 1, job
    assert job["progress"]["step"] < 1_000_000 and stopped_after < 60
    kinds = [kind for kind, _ in sse(client, alice, job_id, follow=False)]
    assert "cancel_requested" in kinds and kinds[-2:] == ["progress", "end"]
    # what it had finished is kept: the real samples it materialised at the start
    assert client.get("/samples", headers=alice, params={"job_id": job_id, "kind": "real"}).json()["count"] > 0


def test_killed_worker_job_is_redelivered_and_resumes(client: TestClient, alice: dict[str, str],
                                                      dataset: dict[str, Any], worker: WorkerProcess,
                                                      db: Database) -> None:  # fmt: skip
    iterations, every = 600, 50
    generator = {"dcgan": {"iterations": iterations, "batch_size": 16, "ngf": 8, "ndf": 8,
                           "checkpoint_every": every, "log_every": 10}}  # fmt: skip
    spec = quick_job(dataset["id"], arms=["baseline", "genmix"], generator_settings=generator)
    job_id = client.post("/jobs", headers=alice, json=spec).json()["id"]

    def past_first_checkpoint() -> dict | None:
        state = job_state(client, alice, job_id)
        assert state["status"] not in TERMINAL, state
        stage, step = state["progress"]["stage"] or "", state["progress"]["step"] or 0
        return state if stage.startswith("generator") and step >= every + 10 else None

    state = wait_for(past_first_checkpoint, 240, 0.1, "training past the first checkpoint")
    with db.session() as session:
        pid = session.get(Job, job_id).worker_pid
    assert pid is not None and pid != os.getpid()
    os.kill(pid, signal.SIGKILL)
    killed_at = state["progress"]["step"]

    job = wait_for_status(client, alice, job_id, TERMINAL, 300, worker)
    assert job["status"] == "succeeded", (job["error"], worker.log()[-3000:])
    assert job["attempts"] == 2
    events = sse(client, alice, job_id)
    redelivered = [data for kind, data in events if kind == "redelivered"]
    assert redelivered and redelivered[0]["attempt"] == 2 and redelivered[0]["previous_pid"] == pid
    resumed = [data for kind, data in events if kind == "resumed" and data["stage"].startswith("generator")]
    assert resumed, [kind for kind, _ in events]
    # training picked up from the checkpoint instead of starting over
    assert every <= resumed[0]["step"] <= killed_at, (resumed, killed_at)  # the checkpoint it started from
    stats = next(a for a in client.get(f"/jobs/{job_id}/artifacts", headers=alice, params={"kind": "generator"})
                 .json()["data"] if a["name"].endswith("train_stats.json"))  # fmt: skip
    trained = json.loads(client.get(f"/jobs/{job_id}/artifacts/{stats['id']}", headers=alice).content)
    assert trained["steps"] == iterations and trained["trained_steps"] < iterations
    assert len(job["results"]["runs"]) == 2


def test_unreachable_broker_leaves_the_job_queued(settings, alice: dict[str, str], dataset: dict[str, Any]) -> None:
    """The database is the source of truth: a job committed while the broker is down stays queued (202) and a
    worker sweep publishes it later (tests/service/test_faults_outages.py runs that against a stopped Redis)."""
    from app.main import create_app

    broken = settings.model_copy(update={"broker_url": "redis://127.0.0.1:9/0"})
    with TestClient(create_app(broken)) as client:
        response = client.post("/jobs", headers=alice, json=quick_job(dataset["id"]))
        assert response.status_code == 202 and response.json()["status"] == "queued", response.text
        assert client.post(f"/jobs/{response.json()['id']}/cancel", headers=alice).status_code == 202  # tidy up
