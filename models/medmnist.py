"""MedMNIST files: the official download when the network allows, else the local copy the lab provides.

Standard library only (no torch, no numpy), so the API process and ``genmix demo`` use it as the workers do.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from models.errors import DatasetError

MEDMNIST_MD5 = {
    "breastmnist.npz": "750601b1f35ba3300ea97c75c52ff8f6",
    "breastmnist_64.npz": "742edef2a1fd1524b2efff4bd7ba9364",
    "pneumoniamnist.npz": "28209eda62fecd6e6a2d98b1501bb15f",
    "retinamnist.npz": "bd4c0672f1bba3e3a89f0e4e876791e4",
}
"""MD5s of the official MedMNIST v2 / MedMNIST+ releases (Zenodo records 5208230 and 10519652)."""

MEDMNIST_CLASS_NAMES: dict[str, list[str]] = {
    "breastmnist": ["malignant", "normal/benign"],
    "pneumoniamnist": ["normal", "pneumonia"],
    "retinamnist": ["grade 0", "grade 1", "grade 2", "grade 3", "grade 4"],
}
"""The official MedMNIST label names, used when a file named after the set carries no ``class_names``."""


def medmnist_filename(flag: str, size: int) -> str:
    """``breastmnist`` at 28 -> ``breastmnist.npz``; at 64 -> ``breastmnist_64.npz`` (MedMNIST+ naming)."""
    return f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"


def medmnist_url(flag: str, size: int) -> str:
    """Size 28 comes from the MedMNIST v2 record, larger sizes from the MedMNIST+ record."""
    if size == 28:
        return f"https://zenodo.org/records/5208230/files/{flag}.npz?download=1"
    return f"https://zenodo.org/records/10519652/files/{flag}_{size}.npz?download=1"


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verified(path: Path, expected: str | None) -> bool:
    return path.is_file() and (expected is None or _md5(path) == expected)


def _download(url: str, target: Path, expected: str | None, timeout: float) -> None:
    """Stream ``url`` to ``target`` atomically; raise OSError on any network or checksum failure."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".part", delete=False) as tmp:
        tmp_path = Path(tmp.name)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - fixed https URL
                shutil.copyfileobj(response, tmp)
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise
    if not _verified(tmp_path, expected):
        tmp_path.unlink(missing_ok=True)
        raise OSError(f"checksum mismatch for {url}")
    tmp_path.replace(target)


def default_cache_dir() -> Path:
    """``~/.cache/genmix`` (the default of the ``cache_dir`` setting); downloads go to its ``medmnist`` subfolder."""
    return Path.home() / ".cache" / "genmix"


def fetch_medmnist(
    flag: str,
    size: int,
    data_dir: str | Path,
    *,
    offline: bool = False,
    cache_dir: str | Path | None = None,
    timeout: float = 10.0,
    url: str | None = None,
) -> Path:
    """Path to a verified MedMNIST npz: the cache, else a fresh download, else ``data_dir``'s copy.

    ``offline`` (the ``offline`` setting) skips the download, so tests never touch the network. ``cache_dir``
    (the ``cache_dir`` setting) defaults to :func:`default_cache_dir`. Files with a known MD5 are only accepted
    when they match it. ``url`` replaces the Zenodo address (e.g. a lab's internal mirror).
    """
    name = medmnist_filename(flag, size)
    url = url or medmnist_url(flag, size)
    expected = MEDMNIST_MD5.get(name)
    cached = Path(cache_dir or default_cache_dir()) / "medmnist" / name
    local = Path(data_dir) / name
    if _verified(cached, expected):
        return cached
    network = "skipped (offline)"
    if not offline:
        try:
            _download(url, cached, expected, timeout)
            return cached
        except (OSError, urllib.error.URLError, TimeoutError) as exc:
            network = f"failed ({exc})"
    if _verified(local, expected):
        return local
    state = "missing" if not local.is_file() else "present but its MD5 does not match the official release"
    raise DatasetError(f"{name}: download from {url} into {cached} {network}, and the local copy {local} is {state}")
