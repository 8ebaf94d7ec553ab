"""The API process never loads torch; the API's name lists agree with the science registries."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib

import pytest

from models import names as catalog
from service.helpers import REPO_ROOT


def test_api_does_not_import_torch(tmp_path) -> None:
    code = (
        "import sys\n"
        "from core.settings import Settings\n"
        "from app.main import create_app\n"
        f"api = create_app(Settings(state_dir={str(tmp_path)!r}, database_url='', broker_url=''))\n"
        "import cli.main, cli.service, app.ingest, core.queue, cli.demo, cli.embedded\n"
        "assert api.openapi()['paths']\n"
        "print('torch' in sys.modules, 'numpy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"], out.stderr


def test_catalog_matches_models() -> None:
    from models.classifiers import CLASSIFIERS
    from models.experiment import ARMS, GENERATIVE_ARMS, PROFILES
    from models.generators import available_generators

    assert set(catalog.ARMS) == set(ARMS)
    assert set(catalog.GENERATIVE_ARMS) == set(GENERATIVE_ARMS)
    assert set(catalog.PROFILES) == set(PROFILES)
    assert set(catalog.CLASSIFIERS) == set(CLASSIFIERS)
    assert set(catalog.GENERATORS) == set(available_generators())


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=!~ ;]", line.strip(), maxsplit=1)[0].lower() for line in requirements
            if line.strip() and not line.startswith("#")}  # fmt: skip


def test_api_image_requirements_are_project_dependencies() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    api = (REPO_ROOT / "docker" / "requirements-api.txt").read_text().splitlines()
    assert _names(api) <= _names(project)
    assert "torch" not in _names(api)


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed")
def test_compose_file_is_valid() -> None:
    for extra in ([], ["--profile", "gpu"]):
        subprocess.run(["docker-compose", *extra, "config", "-q"], cwd=REPO_ROOT, check=True, timeout=60)
