"""Browser-test fixtures: the system Chromium driven by Playwright, and a real embedded ``genmix serve``.

No browser is ever downloaded: Playwright launches Debian's ``chromium`` (``/usr/bin/chromium``, or
``GENMIX_E2E_CHROMIUM``). The service runs as a subprocess on a free loopback port with its own state
directory (SQLite, filesystem broker, one local worker), exactly as a lab would run it on one machine.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from e2e.harness import Service

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("GENMIX_E2E_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's `chromium` package (.ci/run does)")
    return CHROMIUM


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[Service]:
    """``genmix serve`` (API + one worker) on a free port, and a key from ``genmix apikey create``."""
    root = tmp_path_factory.mktemp("e2e-service")
    state, port = root / "state", _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENMIX_")}
    env.update(
        GENMIX_DATA_DIR=str(data_dir),
        GENMIX_TORCH_THREADS="1",
        GENMIX_PROGRESS_INTERVAL="0.2",
        GENMIX_CANCEL_POLL_INTERVAL="0.5",
        GENMIX_SSE_POLL_INTERVAL="0.25",
        PYTHONPATH=str(REPO_ROOT),
    )
    cli = [sys.executable, "-m", "cli.main"]
    key = subprocess.run(
        [*cli, "apikey", "create", "--name", "e2e", "--data-dir", str(state)],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=120,
    ).stdout.strip()  # fmt: skip
    log_path = root / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [*cli, "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(state)],
            env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    running = Service(base, key, log_path)
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                pytest.fail(f"genmix serve exited with {server.returncode}:\n{running.log_tail()}")
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"genmix serve did not answer within 120 s:\n{running.log_tail()}")
            time.sleep(0.3)
        yield running
    finally:
        _stop(server)


@pytest.fixture(scope="module")
def breast_npz(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """A small, imbalanced BreastMNIST slice (train 24 malignant / 56 benign; val 10/10; test 20/20)."""
    with np.load(data_dir / "breastmnist.npz") as data:
        arrays = {key: data[key] for key in data.files}
    out: dict[str, np.ndarray] = {}
    for split, per_class in (("train", (24, 56)), ("val", (10, 10)), ("test", (20, 20))):
        labels = arrays[f"{split}_labels"].reshape(-1)
        index = np.concatenate([np.flatnonzero(labels == k)[:n] for k, n in enumerate(per_class)])
        out[f"{split}_images"] = arrays[f"{split}_images"][index]
        out[f"{split}_labels"] = arrays[f"{split}_labels"][index]
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **out)
    path = tmp_path_factory.mktemp("e2e-data") / "breast-slice.npz"
    path.write_bytes(buffer.getvalue())
    return path


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: ``GENMIX_E2E_OUTPUT`` if set, else the test's temporary directory."""
    configured = os.environ.get("GENMIX_E2E_OUTPUT")
    path = Path(configured) if configured else tmp_path_factory.mktemp("e2e-screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        yield launched
        launched.close()
