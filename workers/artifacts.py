"""Registers the files a job writes as artifacts: kind, seed, generator and run come from the path, parsed by
the same module that lays the folder out (:mod:`models.layout`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

from core.crud.artifacts import upsert_artifact
from core.db.orm import Artifact
from core.db.session import Database
from core.storage import ArtifactStore
from models.layout import describe
from workers import dbretry


class ArtifactRecorder:
    def __init__(self, db: Database, store: ArtifactStore, job_id: str, out_dir: Path, retry_seconds: float = 0.0
                 ) -> None:  # fmt: skip
        self.db = db
        self.store = store
        self.job_id = job_id
        self.out_dir = out_dir.resolve()
        self.retry_seconds = retry_seconds  # a lost database is retried this long (workers.dbretry)

    def record(self, kind: str, path: Path, meta: dict[str, Any]) -> None:
        """Register a file, or every file of a folder (a generator's weights and config)."""
        path = path.resolve()
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            relative = file.relative_to(self.out_dir)
            if relative.parts[-1].startswith(".") or relative.suffix == ".tmp":
                continue
            self._one(kind, file, {**describe(relative).meta(), **_jsonable(meta)})

    def _one(self, kind: str, file: Path, meta: dict[str, Any]) -> None:
        if not file.is_file():
            return
        name, stored, size = file.relative_to(self.out_dir).as_posix(), self.store.relative(file), file.stat().st_size
        dbretry.write(self.db, lambda session: upsert_artifact(
            session, job_id=self.job_id, kind=kind, name=name, stored_path=stored, size_bytes=size, meta=meta),
            seconds=self.retry_seconds, what=f"job {self.job_id}: artifact {name}")  # fmt: skip

    def sweep(self) -> None:
        """Register every artifact file under the job folder and forget rows whose file is gone
        (e.g. a rotated checkpoint); run at the end of a job, whatever its outcome."""
        if self.out_dir.is_dir():
            for file in sorted(self.out_dir.rglob("*")):
                if not file.is_file():
                    continue
                info = describe(file.relative_to(self.out_dir))
                if info.kind is not None:
                    self._one(info.kind, file, info.meta())
        with self.db.session() as session:
            rows = session.execute(select(Artifact.id, Artifact.path).where(Artifact.job_id == self.job_id)).all()
            gone = [row.id for row in rows if not (self.store.root / row.path).is_file()]
            if gone:
                session.execute(delete(Artifact).where(Artifact.id.in_(gone)))
                session.commit()


def _jsonable(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, str | int | float | bool | type(None)) else str(v) for k, v in meta.items()}
