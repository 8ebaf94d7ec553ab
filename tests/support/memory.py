"""Peak memory of a piece of code, measured in a fresh child process (its own heap, its own VmHWM).

The child gets ``growth_mb(fn)``: how far the peak resident size rose while ``fn`` ran, after resetting the
peak to the current size. glibc's malloc runs with fixed thresholds so that large buffers are mapped and
returned at once, which makes the peak a property of the code, not of the allocator's history.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
EXACT_MALLOC = "glibc.malloc.mmap_threshold=1048576:glibc.malloc.trim_threshold=1048576"
CAN_RESET_PEAK = Path("/proc/self/clear_refs").exists()

_PRELUDE = """
import json, sys
import numpy as np

def rss_kb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])

def growth_mb(fn):
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # reset the peak (VmHWM) to the current RSS
    before = rss_kb("VmRSS:")
    result = fn()
    peak = rss_kb("VmHWM:")
    del result
    return (peak - before) / 1024
"""


def run_measured(body: str, timeout: float = 300) -> dict[str, Any]:
    """Run ``body`` (indented freely; it may call ``growth_mb``) after the prelude in a child Python; the JSON
    object its last line of output prints."""
    out = subprocess.run(
        [sys.executable, "-c", _PRELUDE + textwrap.dedent(body)],
        cwd=ROOT,
        env={**os.environ, "GLIBC_TUNABLES": EXACT_MALLOC},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])
