"""Shared fixtures: where the public data sets live, and a small real one loaded once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from models.datasets import ImageSet, load_npz

REPO_ROOT = Path(__file__).resolve().parents[1]


def resolve_data_dir() -> Path:
    """``GENMIX_DATA_DIR`` if set, else the repository's sibling ``../shared/datasets``."""
    configured = os.environ.get("GENMIX_DATA_DIR")
    return Path(configured) if configured else (REPO_ROOT / ".." / "shared" / "datasets").resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = resolve_data_dir()
    if not path.is_dir():
        if os.environ.get("GENMIX_DATA_DIR") or os.environ.get("CI"):
            pytest.fail(f"data directory {path} is missing (GENMIX_DATA_DIR; in CI it must exist)")
        pytest.skip(f"no data directory at {path}; set GENMIX_DATA_DIR to the MedMNIST npz files")
    return path


@pytest.fixture(scope="session")
def breast(data_dir: Path) -> ImageSet:
    """BreastMNIST 28x28 (546 train images, 2 classes): small enough for any unit test."""
    return load_npz(data_dir / "breastmnist.npz")
