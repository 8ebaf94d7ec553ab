"""``genmix run`` / ``genmix worker`` from a venv get the glibc malloc tunables the Docker image sets."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from cli.malloc import MALLOC_TUNABLES, TUNABLES_VALUE, is_program_entry, tuned_environment

ROOT = Path(__file__).resolve().parents[2]


def _env_without_tunables() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}


def test_the_dockerfile_sets_the_same_tunables() -> None:
    assert f"ENV GLIBC_TUNABLES={TUNABLES_VALUE}\n" in (ROOT / "docker" / "Dockerfile").read_text()


def test_tunables_are_added_once_and_an_operators_value_is_kept() -> None:
    assert tuned_environment({})["GLIBC_TUNABLES"] == TUNABLES_VALUE
    assert tuned_environment({"GLIBC_TUNABLES": TUNABLES_VALUE}) is None
    mine = tuned_environment({"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=131072", "X": "1"})
    assert mine["X"] == "1"
    assert mine["GLIBC_TUNABLES"] == (
        f"glibc.malloc.mmap_threshold=131072:glibc.malloc.trim_threshold={MALLOC_TUNABLES['glibc.malloc.trim_threshold']}"
    )
    assert tuned_environment(mine) is None  # the re-executed process stops there


def test_a_test_runner_is_not_the_program_entry() -> None:
    assert not is_program_entry()  # CliRunner-based tests never re-execute pytest


def test_the_process_re_executes_once_with_the_tunables_in_its_start_environment() -> None:
    code = textwrap.dedent(
        """
        import os
        from cli.malloc import ensure_malloc_tunables
        ensure_malloc_tunables("serve")  # not a heavy command: no re-exec
        ensure_malloc_tunables("run")
        print("started with", os.environ.get("GLIBC_TUNABLES"))  # execve gave it at start: not set in Python
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=_env_without_tunables(), capture_output=True, text=True, check=True
    )
    assert out.stdout.splitlines() == [f"started with {TUNABLES_VALUE}"]  # printed once: one re-exec, then none


def test_genmix_run_from_the_module_entry_re_executes_and_still_parses_its_arguments(tmp_path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "run", "--dataset", str(tmp_path / "missing.npz")],
        cwd=ROOT,
        env=_env_without_tunables(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 2 and "does not exist" in out.stderr
