"""What a new user hit (issue 11): each answer names the GenMix setting or command that fixes it.

The key that went to another database, the demo that stops the service it just printed URLs for, Textual
Inversion's hub-id error, class names that do not match the classes, and the split rule the README states.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support.processes import GENMIX, REPO_ROOT, clean_env

from models.datasets.carve import carve_counts


def test_apikey_create_says_which_database_the_key_went_to(tmp_path: Path) -> None:
    env = clean_env(XDG_DATA_HOME=str(tmp_path / "xdg"))  # no --data-dir, no GENMIX_*: the default state dir
    result = subprocess.run([*GENMIX, "apikey", "create", "--name", "lab"], env=env, cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"gmx_\w+_\S+", result.stdout.strip()), result.stdout  # the key, alone on stdout
    assert str(tmp_path / "xdg" / "genmix" / "genmix.db") in result.stderr, result.stderr
    assert "--data-dir" in result.stderr and "GENMIX_DATABASE_URL" in result.stderr, result.stderr


def test_apikey_create_names_a_server_database_without_its_password(database_url: str) -> None:
    url = database_url.replace("postgres@", "postgres:s3cret@")  # trust auth: the password is not checked
    env = clean_env(GENMIX_DATABASE_URL=url)
    result = subprocess.run([*GENMIX, "apikey", "create", "--name", "lab"], env=env, cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert url.rsplit("/", 1)[1] in result.stderr and "s3cret" not in result.stderr, result.stderr


def test_the_demo_says_that_it_stops_the_service(tmp_path: Path) -> None:
    from cli.demo import closing_note

    note = closing_note(tmp_path, keep_running=False)
    assert "stop" in note and "--keep-running" in note and str(tmp_path) in note
    assert "--keep-running" not in closing_note(tmp_path, keep_running=True)


def test_textual_inversion_hub_id_error_names_the_genmix_settings() -> None:
    from models.generators import build_generator

    with pytest.raises(Exception) as caught:
        build_generator("textual_inversion", 2, 1, (28, 28), config={"pretrained_dir": "nobody/genmix-no-such-model"},
                        profile="quick", device="cpu", seed=0)  # fmt: skip
    message = str(caught.value)
    assert "local_files_only" not in message, message
    assert "nobody/genmix-no-such-model" in message and "GENMIX_TI_PRETRAINED" in message, message
    assert "GENMIX_ALLOW_DOWNLOADS" in message, message


def test_class_names_for_the_wrong_number_of_classes(client: TestClient, alice: dict[str, str],
                                                     slice_bytes: bytes) -> None:  # fmt: skip
    response = client.post("/datasets", headers=alice, files={"file": ("b.npz", slice_bytes)},
                           data={"name": "three", "class_names": "a,b,c"})  # fmt: skip
    assert response.status_code == 422, response.text
    assert "3 class names for 2 classes" in response.json()["detail"], response.text


@pytest.mark.parametrize("n, expected", [(10, (6, 2, 2)), (100, (70, 15, 15))])
def test_the_readme_states_the_split_rule_the_code_uses(n: int, expected: tuple[int, int, int]) -> None:
    carved: dict[str, Any] = carve_counts(n, ["val", "test"])
    assert (n - carved["val"] - carved["test"], carved["val"], carved["test"]) == expected
    readme = (REPO_ROOT / "README.md").read_text()
    assert "70/15/15" in readme and "70/10/20" not in readme
    assert "70/15/15" in (REPO_ROOT / "docs" / "SERVICE.md").read_text()
