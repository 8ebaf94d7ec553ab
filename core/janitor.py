"""What a killed API process leaves behind, swept: upload parts (``uploads/*.part``) and dataset folders that
were written but never committed (no database row). Only files nobody has touched for ``stale_file_after``
seconds go, so an upload streaming or being validated by another API process is never deleted. Run when
``genmix serve`` starts and by every worker sweep (:mod:`workers.sweep`)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from sqlalchemy.orm import Session

from core.db.orm import Dataset
from core.settings import Settings
from core.storage import ArtifactStore

log = logging.getLogger("genmix.janitor")


def _newest_mtime(path: Path) -> float:
    newest = path.stat().st_mtime
    if path.is_dir():
        for child in path.rglob("*"):
            try:
                newest = max(newest, child.lstat().st_mtime)
            except OSError:
                continue
    return newest


def remove_stale_files(settings: Settings, session: Session) -> list[Path]:
    """Delete stale upload parts and row-less dataset folders; returns what was deleted."""
    store = ArtifactStore(settings.artifacts)
    cutoff = time.time() - settings.stale_file_after
    removed: list[Path] = []
    if store.uploads.is_dir():
        for part in store.uploads.glob("*.part"):
            try:
                if part.is_file() and part.stat().st_mtime < cutoff:
                    part.unlink()
                    removed.append(part)
            except OSError:  # another process removed it first
                continue
    datasets = store.root / "datasets"
    if datasets.is_dir():
        for folder in datasets.iterdir():
            try:
                if not folder.is_dir() or _newest_mtime(folder) >= cutoff:
                    continue
            except OSError:
                continue
            if session.get(Dataset, folder.name) is None:
                store.remove_tree(folder)
                removed.append(folder)
        session.rollback()
    if removed:
        log.warning("removed %d stale file(s) a stopped API left behind: %s", len(removed),
                    ", ".join(p.relative_to(store.root).as_posix() for p in removed[:10]))  # fmt: skip
    return removed
