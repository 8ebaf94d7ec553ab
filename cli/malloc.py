"""glibc malloc tunables for the heavy commands, the same the Docker worker image sets.

glibc's default malloc hands every large tensor buffer back to the kernel on free (mmap/munmap above a
dynamic threshold, heap trimming), so a training step refaults its buffers page by page: half the CPU time
at 224 px (docs/BENCHMARKS.md). ``GLIBC_TUNABLES`` fixes that, but glibc reads it only when a process starts,
so ``genmix run`` and ``genmix worker`` started without it re-execute themselves once, with it set, before
anything heavy is imported. A value the operator already gave for a key is kept (set
``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=131072`` to get glibc's default back); once both keys are
present nothing is re-executed, which also ends the loop after the one re-exec.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping
from pathlib import Path

MALLOC_TUNABLES = {"glibc.malloc.mmap_threshold": "268435456", "glibc.malloc.trim_threshold": "1073741824"}
"""256 MiB mmap threshold, 1 GiB trim threshold; ``docker/Dockerfile`` sets the same (a test checks)."""
TUNABLES_VALUE = ":".join(f"{key}={value}" for key, value in MALLOC_TUNABLES.items())
HEAVY_COMMANDS = frozenset({"run", "worker"})


def tuned_environment(env: Mapping[str, str]) -> dict[str, str] | None:
    """The environment to re-execute with, or None when ``env`` already names every malloc tunable."""
    current = env.get("GLIBC_TUNABLES", "")
    present = {item.split("=", 1)[0] for item in current.split(":") if item}
    missing = [f"{key}={value}" for key, value in MALLOC_TUNABLES.items() if key not in present]
    if not missing:
        return None
    return {**env, "GLIBC_TUNABLES": ":".join([*([current] if current else []), *missing])}


def is_program_entry() -> bool:
    """Whether this process is the ``genmix`` command itself (its console script or ``python -m cli.main``),
    not a caller of its functions such as a test runner (which must never be re-executed)."""
    entry = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if entry is None:
        return False
    return entry.name == "genmix" or entry.resolve() == (Path(__file__).parent / "main.py").resolve()


def ensure_malloc_tunables(command: str | None = None) -> None:
    """Re-execute this process once with the malloc tunables if ``command`` is heavy (or not given) and the
    environment lacks them; a no-op off glibc, when they are set, or when the interpreter's own command line
    is unknown."""
    if command is not None and command not in HEAVY_COMMANDS:
        return
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return
    env = tuned_environment(os.environ)
    argv = list(getattr(sys, "orig_argv", []))
    if env is None or not argv or not sys.executable:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *argv[1:]], env)
