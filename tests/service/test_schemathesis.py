"""Schemathesis (every check, every operation) against a live embedded ``genmix serve`` with an API key: no 5xx,
every status code documented, every schema-valid request accepted (see ``schemathesis.toml`` for the two
operations whose semantic refusals JSON Schema cannot express). A few hundred cases, about a minute on two
cores; ``scripts/schemathesis_long.sh`` runs the same for thousands (``docs/BENCHMARKS.md``)."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.processes import REPO_ROOT, GenmixServe, clean_env

SCHEMATHESIS = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which("schemathesis")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, slice_bytes: bytes) -> Iterator[GenmixServe]:
    """The API alone (``--no-worker``: fuzzed jobs stay queued instead of training), with one real dataset."""
    state = tmp_path_factory.mktemp("schemathesis-state")
    with GenmixServe(state, clean_env(), state / "serve.log", args=["--no-worker"]) as service:
        with service.client() as client:
            files = {"file": ("breast.npz", io.BytesIO(slice_bytes))}
            assert client.post("/datasets", files=files, data={"name": "fuzz"}).status_code == 201
        yield service


def run_schemathesis(service: GenmixServe, *args: str, timeout: float) -> tuple[int, str]:
    assert SCHEMATHESIS, "schemathesis is a dev dependency: pip install -e '.[dev]'"
    command = [SCHEMATHESIS, "--config-file", str(REPO_ROOT / "schemathesis.toml"), "run",
               f"{service.base_url}/openapi.json", "-H", f"Authorization: Bearer {service.api_key}",
               "--checks", "all", "--workers", "1", "--request-timeout", "30", "--no-color", *args]  # fmt: skip
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stdout + done.stderr


def counts(output: str) -> dict[str, int]:
    """``{"generated": N, "passed": N, ...}`` from schemathesis' "Test cases:" summary line."""
    line = re.search(r"^\s*(\d+ generated.*)$", output, re.MULTILINE)
    assert line, output[-3000:]
    return {word: int(number) for number, word in re.findall(r"(\d+) ([a-z]+)", line.group(1))}


def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(served: GenmixServe) -> None:
    code, output = run_schemathesis(served, "--max-examples", "4", "--seed", "11", timeout=400)
    found = counts(output)
    assert code == 0, output[-6000:] + "\n--- service log ---\n" + served.log_tail(3000)
    assert found["generated"] >= 200 and found.get("failures", 0) == 0, found
    assert "Server error" not in output and " 500 " not in served.log()
