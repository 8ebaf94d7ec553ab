"""Schemathesis, every check over every operation, against a live embedded ``genmix serve --no-worker``.

The long form of ``tests/service/test_schemathesis.py``: a fresh state directory, one small dataset (so job
routes reach their logic), a key from ``genmix apikey create``, then ``schemathesis run`` with the repository's
``schemathesis.toml`` and ``--max-examples N``. Prints schemathesis' summary and a one-line figure; exits with
schemathesis' status (0: no failure of any check, no 5xx).

    nice -n 10 python bench/fuzz_api.py --max-examples 100 [--seed 7] [--workers 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))

from support.processes import GenmixServe, clean_env  # noqa: E402


def small_dataset() -> bytes:
    """An npz of 2 classes × 30 random 16×16 gray images (carved 70/15/15 by the service)."""
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    np.savez(buffer, train_images=rng.integers(0, 256, (60, 16, 16), dtype=np.uint8),
             train_labels=np.repeat([0, 1], 30))  # fmt: skip
    return buffer.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=1, help="schemathesis workers (concurrent requests)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    binary = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which("schemathesis")
    if binary is None:
        print("schemathesis is a dev dependency: pip install -e '.[dev]'", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="genmix-fuzz-") as tmp:
        state = Path(tmp)
        with GenmixServe(state, clean_env(), state / "serve.log", args=["--no-worker"]) as service:
            with service.client() as client:
                files = {"file": ("fuzz.npz", io.BytesIO(small_dataset()))}
                response = client.post("/datasets", files=files, data={"name": "fuzz"})
                assert response.status_code == 201, response.text
            command = [binary, "--config-file", str(REPO_ROOT / "schemathesis.toml"), "run",
                       f"{service.base_url}/openapi.json", "-H", f"Authorization: Bearer {service.api_key}",
                       "--checks", "all", "--max-examples", str(args.max_examples), "--seed", str(args.seed),
                       "--workers", str(args.workers), "--request-timeout", "30", "--no-color"]  # fmt: skip
            started = time.monotonic()
            done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
            elapsed = time.monotonic() - started
            server_errors = [
                line
                for line in service.log().splitlines()
                if "Traceback" in line or re.search(r"\b50[0-9] (Internal|Service|Bad Gateway)", line)
            ]
        output = done.stdout + done.stderr
    print(output[-5000:])
    line = re.search(r"^\s*(\d+ generated.*)$", output, re.MULTILINE)
    summary = {word: int(n) for n, word in re.findall(r"(\d+) ([a-z]+)", line.group(1))} if line else {}
    figure = {"cases": summary.get("generated", 0), "passed": summary.get("passed", 0),
              "failures": summary.get("failures", 0), "seconds": round(elapsed, 1), "exit": done.returncode,
              "max_examples": args.max_examples, "seed": args.seed, "server_errors_in_log": len(server_errors),
              "server_error_lines": server_errors[:5]}  # fmt: skip
    print(json.dumps(figure))
    if args.json:
        args.json.write_text(json.dumps(figure, indent=2))
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
