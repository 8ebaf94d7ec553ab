"""Issue 11, items 4-6: what ``POST /jobs`` may carry, which weights a job may load, and what a failed job says.

* Item 4: a request body is capped (``GENMIX_REQUEST_MAX_BYTES``), on ``Content-Length`` and while it streams.
* Item 5: a request names weights only as one of the server's checkpoints (``GENMIX_CHECKPOINT_DIR``), never as
  a path or hub id, and never switches downloads on; the worker resolves the name.
* Item 6: a failed job's ``error`` is a sentence without server paths or a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from core.settings import Settings
from service.helpers import WorkerProcess, quick_job, wait_for_status

TERMINAL = {"succeeded", "failed", "cancelled"}


def test_a_large_job_spec_is_413_and_not_stored(client: TestClient, alice: dict[str, str],
                                                dataset: dict[str, Any]) -> None:  # fmt: skip
    before = client.get("/jobs", headers=alice, params={"limit": 1}).json()["count"]
    templates = [f"a scan {i} of a {{}} " + "x" * 4000 for i in range(256)]  # valid, and 1 MB
    spec = quick_job(dataset["id"], generators=["textual_inversion"], queue="gpu",
                     generator_settings={"textual_inversion": {"templates": templates}})  # fmt: skip
    body = json.dumps(spec).encode()
    assert len(body) > 1_000_000
    headers = {**alice, "Content-Type": "application/json"}
    response = client.post("/jobs", headers=headers, content=body)
    assert response.status_code == 413, response.text[:300]
    assert "byte limit" in response.json()["detail"]

    def chunks():  # no Content-Length: the cap holds while the body streams
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    response = client.post("/jobs", headers=headers, content=chunks())
    assert response.status_code == 413, response.text[:300]
    assert client.get("/jobs", headers=alice, params={"limit": 1}).json()["count"] == before


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("checkpoints")
    (folder / "imagenet-smallcnn.safetensors").write_bytes(b"not really weights")
    (folder / "sd15").mkdir()
    return folder


@pytest.fixture(scope="module")
def api(settings: Settings, checkpoints: Path):
    served = settings.model_copy(update={"checkpoint_dir": checkpoints})
    with TestClient(create_app(served), raise_server_exceptions=False) as client:
        yield client


def test_a_request_cannot_name_server_paths_or_switch_downloads_on(api: TestClient, alice: dict[str, str],
                                                                   dataset: dict[str, Any]) -> None:  # fmt: skip
    ti = {"generators": ["textual_inversion"], "queue": "gpu"}
    for change in (
        {"classifier_settings": {"weights": "/etc/passwd"}},
        {"classifier_settings": {"weights": "../../etc/passwd"}},
        {**ti, "generator_settings": {"textual_inversion": {"pretrained_dir": "/srv"}}},
        {**ti, "generator_settings": {"textual_inversion": {"pretrained_dir": "runwayml/stable-diffusion-v1-5"}}},
        {**ti, "generator_settings": {"textual_inversion": {"pretrained_dir": "sd15", "allow_download": True}}},
        {**ti, "generator_settings": {"textual_inversion": {"allow_download": False}}},
        {"generators": ["diffusion"], "generator_settings": {"diffusion": {"pretrained_dir": "/root"}}},
    ):
        response = api.post("/jobs", headers=alice, json={**quick_job(dataset["id"]), **change})
        assert response.status_code == 422, (change, response.status_code, response.text[:300])
        text = response.text
        assert "server" in text, text[:300]
    # a name the server does not have is refused at the door, without telling what exists
    response = api.post("/jobs", headers=alice, json={**quick_job(dataset["id"]),
                                                      "classifier_settings": {"weights": "nope.pth"}})  # fmt: skip
    assert response.status_code == 422 and "no checkpoint 'nope.pth'" in response.text, response.text[:300]


def test_the_worker_resolves_checkpoint_names_against_the_server_folder(api: TestClient, alice: dict[str, str],
                                                                        dataset: dict[str, Any], settings: Settings,
                                                                        checkpoints: Path) -> None:  # fmt: skip
    from core.jobspec import with_server_settings
    from models.spec import LOCAL_FILES, ExperimentSpec, spec_fields

    spec = quick_job(dataset["id"], queue="gpu", generators=["textual_inversion"],
                     classifier_settings={"weights": "imagenet-smallcnn.safetensors"},
                     generator_settings={"textual_inversion": {"pretrained_dir": "sd15"}})  # fmt: skip
    response = api.post("/jobs", headers=alice, json=spec)
    assert response.status_code == 202, response.text[:300]
    job = response.json()
    api.post(f"/jobs/{job['id']}/cancel", headers=alice)
    server = settings.model_copy(update={"checkpoint_dir": checkpoints, "allow_downloads": False})
    resolved = with_server_settings(ExperimentSpec.model_validate(spec_fields(job["spec"])), server, "gpu")
    assert resolved.classifier_settings["weights"] == str(checkpoints / "imagenet-smallcnn.safetensors")
    ti = resolved.generator_settings["textual_inversion"]
    assert ti["pretrained_dir"] == str(checkpoints / "sd15") and ti["allow_download"] is False
    # genmix run (the machine's own user) may still name local files
    local = ExperimentSpec.model_validate({"classifier_settings": {"weights": "/data/w.pth"}},
                                          context={LOCAL_FILES: True})  # fmt: skip
    assert with_server_settings(local, server, local_files=True).classifier_settings["weights"] == "/data/w.pth"


def test_a_failed_job_says_what_to_change_without_server_paths(settings: Settings, alice: dict[str, str],
                                                               dataset: dict[str, Any],
                                                               worker: WorkerProcess) -> None:  # fmt: skip
    """The API host sees no checkpoint folder (so the door cannot check); the worker has none configured."""
    elsewhere = settings.model_copy(update={"checkpoint_dir": Path("/nonexistent/genmix-checkpoints")})
    with TestClient(create_app(elsewhere)) as client:
        spec = quick_job(dataset["id"], arms=["baseline"], classifier_settings={"epochs": 1, "weights": "w.pth"})
        response = client.post("/jobs", headers=alice, json=spec)
        assert response.status_code == 202, response.text[:300]
        final = wait_for_status(client, alice, response.json()["id"], TERMINAL, 180, worker)
    error = final["error"] or ""
    assert final["status"] == "failed", final
    assert "Traceback" not in error and 'File "' not in error, error
    for server_path in (str(settings.artifacts), "/models/", "site-packages", str(Path(__file__).parents[2])):
        assert server_path not in error, error
    assert "classifier_settings.weights" in error and len(error) <= 500, error
