"""One experiment spec: the API, the CLI, the worker and the web form take every default from it, and it refuses
at the door what would fail (or run for ever) in a worker."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from cli.science import run_command
from core.jobspec import JobCreate
from core.settings import Settings
from models.spec import GENMIX_ALPHA, MIXUP_ALPHA, ExperimentSpec
from workers.delivery import experiment_spec

REPO = Path(__file__).resolve().parents[2]
DEFAULTS = ExperimentSpec().model_dump()
# genmix run's option names for the spec fields whose flag is not the field's own name
CLI_NAMES = {
    "synthetic_ratio": "ratio",
    "partner_pool": "pool",
    "classifier_seeds_per_generator": "classifier_seeds",
}


def test_api_schema_documents_the_spec_defaults(tmp_path) -> None:
    from app.main import create_app

    api = create_app(Settings(state_dir=tmp_path, database_url="", broker_url=""))
    props = api.openapi()["components"]["schemas"]["JobCreate"]["properties"]
    for field, value in DEFAULTS.items():
        assert props[field].get("default") == value, field
    assert props["alpha"]["default"] == GENMIX_ALPHA and props["mixup_alpha"]["default"] == MIXUP_ALPHA


def test_cli_options_default_to_the_spec() -> None:
    options = {param.name: param.default for param in run_command.params}
    for field, value in DEFAULTS.items():
        option = CLI_NAMES.get(field, field)
        if field in ("classifier_settings", "generator_settings"):
            assert options[field.replace("settings", "config")] is None  # JSON flags: empty means the profile's
            continue
        expected = ",".join(map(str, value)) if isinstance(value, list) else value
        assert options[option] == expected, field


def test_worker_reads_a_stored_spec_back_with_the_same_defaults() -> None:
    stored = JobCreate(dataset_id="d").model_dump(mode="json") | {"dataset_name": "x", "class_names": ["a", "b"]}
    server = Settings(device="auto")
    # the one addition is the server's download rule (GENMIX_ALLOW_DOWNLOADS, off by default), never the request's
    served = DEFAULTS | {"classifier_settings": {"allow_download": False}}
    assert experiment_spec(stored, "gpu", server).model_dump() == served
    assert experiment_spec(stored, "cpu", server).device == "cpu"
    assert experiment_spec(stored, "gpu", Settings(device="cuda:1")).device == "cuda:1"


def test_web_form_takes_defaults_and_names_from_the_api_schema() -> None:
    """The form has no copy of a default or of a list of names: it reads /openapi.json (the browser test checks
    the rendered values)."""
    script = (REPO / "app" / "web" / "static" / "js" / "experiment.js").read_text()
    assert "specSchema" in script and "JobCreate" in script
    assert not re.search(r"\b0\.3\b|\b0\.5\b|\"smallcnn\"|\"dcgan\"|\"baseline\"", script)
    page = (REPO / "app" / "web" / "static" / "index.html").read_text()
    form = page[page.index('id="job-form"') : page.index("</form>", page.index('id="job-form"'))]
    assert not re.search(r"<input[^>]*(value=\"[\d.]+\"|checked)", form)


@pytest.mark.parametrize(
    "change, words",
    [
        ({"classifier_settings": {"epochs": -5}}, ["epochs"]),
        ({"classifier_settings": {"epochs": 10**9}}, ["epochs"]),
        ({"generator_settings": {"dcgan": {"iterations": 10**12}}}, ["iterations"]),
        ({"generator_settings": {"dcgan": {"iterationz": 5}}}, ["iterationz", "iterations"]),
        ({"classifier_settings": {"optimiser": "sgd"}}, ["optimiser"]),
        ({"classifier_settings": {"name": "vgg16"}}, ["classifier"]),
        ({"generator_settings": {"stylegan": {}}}, ["stylegan", "not in generators"]),
        ({"generators": ["dcgan", "gan3000"]}, ["gan3000"]),
        ({"classifier": "alexnet"}, ["alexnet"]),
        ({"alpha": float("nan")}, ["alpha"]),
        ({"mixup_alpha": 0}, ["mixup_alpha"]),
        ({"seeds": list(range(51))}, ["seeds"]),
        ({"arms": ["genmix"], "generators": []}, ["generator"]),
    ],
)
def test_spec_refuses_what_a_worker_could_not_run(change: dict, words: list[str]) -> None:
    with pytest.raises(ValidationError) as caught:
        ExperimentSpec(**change)
    message = str(caught.value)
    assert all(word in message for word in words), message


def test_mixup_has_its_own_alpha() -> None:
    spec = ExperimentSpec(alpha=0.7, mixup_alpha=0.2)
    assert (spec.alpha, spec.mixup_alpha) == (0.7, 0.2)
    assert ExperimentSpec(classifier="resnet18", classifier_settings={"epochs": 3}).classifier_overrides() == {
        "name": "resnet18",
        "epochs": 3,
    }


def test_migration_0002_turns_old_stored_specs_into_valid_ones() -> None:
    """A job queued before the one spec (``generator``, classifier dict, one α for both) still runs the same."""
    import importlib.util

    path = REPO / "migrations" / "versions" / "0002_one_experiment_spec.py"
    module_spec = importlib.util.spec_from_file_location("migration_0002", path)
    assert module_spec is not None and module_spec.loader is not None
    migration = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(migration)
    old = {"dataset_id": "d", "generators": ["dcgan"], "alpha": 0.4, "samples_per_class": 3, "queue": None,
           "classifier": {"name": "smallcnn", "epochs": 2}, "generator": {"dcgan": {"iterations": 40}}}  # fmt: skip
    new = migration._upgraded(old)
    spec = experiment_spec(new, "gpu", Settings())
    assert (spec.alpha, spec.mixup_alpha, spec.classifier) == (0.4, 0.4, "smallcnn")
    assert spec.classifier_settings == {"epochs": 2, "allow_download": False}
    assert spec.generator_settings == {"dcgan": {"iterations": 40}}
    back = migration._downgraded(new)
    assert back == old
