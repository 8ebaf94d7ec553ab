"""Registers the files a job writes as artifacts (by kind, with seed / generator / run from the path)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

from core.crud.artifacts import upsert_artifact
from core.db.orm import Artifact
from core.db.session import Database
from core.storage import ArtifactStore

_SEED_DIR = re.compile(r"^seed(\d+)$")


def classify(relative: Path) -> str | None:
    """The artifact kind of a file by its place under the job folder (None: not an artifact)."""
    parts = relative.parts
    if not parts or parts[0] == "samples" or parts[-1].startswith(".") or parts[-1].endswith(".tmp"):
        return None
    if "checkpoint" in parts:
        return "checkpoint"
    if parts == ("results.json",):
        return "results"
    if parts == ("config.json",):
        return "config"
    if parts[0] == "figures" and relative.suffix == ".png":
        return "figure"
    if parts[0] == "runs" and len(parts) == 2 and relative.suffix == ".json":
        return "record"
    if _SEED_DIR.match(parts[0]) and len(parts) >= 3:
        if parts[2:] == ("synthetic.npz",):
            return "synthetic"
        if parts[2:] == ("genmix_export.npz",):
            return "genmix_export"
        if parts[2] == "model" or parts[2:] == ("train_stats.json",):
            return "generator"
    return None


def path_meta(relative: Path) -> dict[str, Any]:
    """Seed, generator and run id as far as the path tells them."""
    parts = relative.parts
    meta: dict[str, Any] = {}
    if parts and (match := _SEED_DIR.match(parts[0])):
        meta["seed"] = int(match.group(1))
        if len(parts) >= 3:
            meta["generator"] = parts[1]
    if parts and parts[0] == "runs" and len(parts) >= 2:
        meta["run_id"] = Path(parts[1]).stem
    return meta


class ArtifactRecorder:
    def __init__(self, db: Database, store: ArtifactStore, job_id: str, out_dir: Path) -> None:
        self.db = db
        self.store = store
        self.job_id = job_id
        self.out_dir = out_dir.resolve()

    def record(self, kind: str, path: Path, meta: dict[str, Any]) -> None:
        """Register a file, or every file of a folder (a generator's weights and config)."""
        path = path.resolve()
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            relative = file.relative_to(self.out_dir)
            if relative.parts[-1].startswith(".") or relative.suffix == ".tmp":
                continue
            self._one(kind, file, {**path_meta(relative), **_jsonable(meta)})

    def _one(self, kind: str, file: Path, meta: dict[str, Any]) -> None:
        if not file.is_file():
            return
        with self.db.session() as session:
            upsert_artifact(
                session,
                job_id=self.job_id,
                kind=kind,
                name=file.relative_to(self.out_dir).as_posix(),
                stored_path=self.store.relative(file),
                size_bytes=file.stat().st_size,
                meta=meta,
            )

    def sweep(self) -> None:
        """Register every artifact file under the job folder and forget rows whose file is gone
        (e.g. a rotated checkpoint); run at the end of a job, whatever its outcome."""
        if self.out_dir.is_dir():
            for file in sorted(self.out_dir.rglob("*")):
                if not file.is_file():
                    continue
                relative = file.relative_to(self.out_dir)
                kind = classify(relative)
                if kind is not None:
                    self._one(kind, file, path_meta(relative))
        with self.db.session() as session:
            rows = session.execute(select(Artifact.id, Artifact.path).where(Artifact.job_id == self.job_id)).all()
            gone = [row.id for row in rows if not (self.store.root / row.path).is_file()]
            if gone:
                session.execute(delete(Artifact).where(Artifact.id.in_(gone)))
                session.commit()


def _jsonable(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, str | int | float | bool | type(None)) else str(v) for k, v in meta.items()}
