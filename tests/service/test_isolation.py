"""The API process never loads torch; the API's name lists agree with the science registries."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib

import pytest

from service.helpers import REPO_ROOT

# The modules of models/ that app/ and core/ read (directly or through each other), and the demo's table:
# they must stay free of torch. A package stands for all its submodules.
TORCH_FREE_MODELS = (
    "models.names",
    "models.errors",
    "models.medmnist",
    "models.report",
    "models.table",
    "models.verdict",
    "models.selection",
    "models.spec",
    "models.profiles",
    "models.datasets",
)


def test_api_does_not_import_torch(tmp_path) -> None:
    code = (
        "import importlib, pkgutil, sys\n"
        "from core.settings import Settings\n"
        "from app.main import create_app\n"
        f"api = create_app(Settings(state_dir={str(tmp_path)!r}, database_url='', broker_url=''))\n"
        "import cli.main, cli.service, app.ingest, core.queue, cli.demo, cli.embedded\n"
        "assert api.openapi()['paths']\n"
        "print('torch' in sys.modules, 'numpy' in sys.modules)\n"
        f"for name in {TORCH_FREE_MODELS!r}:\n"
        "    module = importlib.import_module(name)\n"
        "    subs = [m.name for m in pkgutil.walk_packages(getattr(module, '__path__', []), name + '.')]\n"
        "    for sub in [name, *subs]:\n"
        "        importlib.import_module(sub)\n"
        "        print(sub, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    first, *modules = out.stdout.splitlines()
    assert first.split() == ["False", "True"], out.stderr  # the API and the CLI: numpy yes, torch no
    loaded = dict(line.split() for line in modules)
    assert set(TORCH_FREE_MODELS) <= set(loaded) and "models.datasets.npz" in loaded, out.stdout
    assert [name for name, torch in loaded.items() if torch == "True"] == [], "torch is loaded by the first of these"


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
