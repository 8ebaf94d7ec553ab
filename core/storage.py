"""The artifact root on disk: datasets, job outputs, sample PNGs. Paths come from the database, never clients.

Every file the service writes goes to a temporary name in the same folder and is renamed into place, so a
reader never sees half a file. :meth:`ArtifactStore.resolve` refuses any stored path that leaves the root.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class UnsafePathError(ValueError):
    """A stored path would leave the artifact root (or is not a regular file)."""


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    @property
    def uploads(self) -> Path:
        return self.root / "uploads"

    def dataset_dir(self, dataset_id: str) -> Path:
        return self.root / "datasets" / dataset_id

    def job_dir(self, job_id: str) -> Path:
        return self.root / "jobs" / job_id

    def relative(self, path: Path) -> str:
        """``path`` as stored in the database: relative to the root, which it must be under."""
        resolved = Path(path).resolve()
        if not resolved.is_relative_to(self.root):
            raise UnsafePathError(f"{path} is outside the artifact root")
        return resolved.relative_to(self.root).as_posix()

    def resolve(self, stored: str) -> Path:
        """The file behind a stored relative path; raises when it escapes the root or is not a file."""
        if not stored or stored.startswith(("/", "\\")) or "\x00" in stored:
            raise UnsafePathError(f"refusing stored path {stored!r}")
        path = (self.root / stored).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            raise UnsafePathError(f"refusing stored path {stored!r}")
        return path

    @contextmanager
    def atomic(self, target: Path) -> Iterator[Path]:
        """Yield a temporary path beside ``target``; rename it into place when the block succeeds."""
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            yield tmp
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def write_bytes(self, target: Path, data: bytes) -> None:
        with self.atomic(target) as tmp:
            tmp.write_bytes(data)

    def remove_tree(self, path: Path) -> None:
        """Delete a folder under the root (a dataset or job folder)."""
        resolved = Path(path).resolve()
        if resolved == self.root or not resolved.is_relative_to(self.root):
            raise UnsafePathError(f"refusing to delete {path}")
        shutil.rmtree(resolved, ignore_errors=True)
