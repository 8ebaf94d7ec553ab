"""Browser-test fixtures: the system Chromium driven by Playwright, and a real embedded ``genmix serve``.

No browser is ever downloaded: Playwright launches Debian's ``chromium`` (``/usr/bin/chromium``, or
``GENMIX_E2E_CHROMIUM``). The service runs as a subprocess on a free loopback port with its own state
directory (SQLite, filesystem broker, one local worker), exactly as a lab would run it on one machine.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.data import breast_slice
from support.processes import GenmixServe, clean_env

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


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's `chromium` package (.ci/run does)")
    return CHROMIUM


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[GenmixServe]:
    """``genmix serve`` (API + one worker) on a free port, and a key from ``genmix apikey create``."""
    root = tmp_path_factory.mktemp("e2e-service")
    env = clean_env(
        GENMIX_DATA_DIR=str(data_dir),
        GENMIX_TORCH_THREADS="1",
        GENMIX_PROGRESS_INTERVAL="0.2",
        GENMIX_CANCEL_POLL_INTERVAL="0.5",
        GENMIX_SSE_POLL_INTERVAL="0.25",
    )
    with GenmixServe(root / "state", env, root / "serve.log", key_name="e2e") as running:
        yield running


@pytest.fixture(scope="module")
def breast_npz(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """A small, imbalanced BreastMNIST slice (train 24 malignant / 56 benign; val 10/10; test 20/20)."""
    path = tmp_path_factory.mktemp("e2e-data") / "breast-slice.npz"
    path.write_bytes(breast_slice(data_dir, {"train": (24, 56), "val": 10, "test": 20}))
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
