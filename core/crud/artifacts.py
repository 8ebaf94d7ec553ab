"""Artifact records: a worker registers each file a job writes; the API lists and serves them by id."""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.db.orm import Artifact

MEDIA_TYPES = {".json": "application/json", ".npz": "application/octet-stream", ".png": "image/png",
               ".safetensors": "application/octet-stream", ".pt": "application/octet-stream"}  # fmt: skip


def media_type(path: Path) -> str:
    return MEDIA_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def upsert_artifact(
    session: Session,
    *,
    job_id: str,
    kind: str,
    name: str,
    stored_path: str,
    size_bytes: int,
    meta: dict[str, Any],
) -> Artifact:
    """One row per file of a job; a rewritten file (a newer checkpoint) updates its row."""
    query = select(Artifact).where(Artifact.job_id == job_id, Artifact.path == stored_path)
    artifact = session.scalars(query).one_or_none()
    if artifact is None:
        artifact = Artifact(job_id=job_id, path=stored_path)
        session.add(artifact)
    artifact.kind = kind
    artifact.name = name
    artifact.size_bytes = size_bytes
    artifact.media_type = media_type(Path(stored_path))
    artifact.meta = meta
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        artifact = session.scalars(query).one()
    return artifact


def list_artifacts(session: Session, *, job_id: str, kind: str | None, limit: int, offset: int) -> list[Artifact]:
    query = select(Artifact).where(Artifact.job_id == job_id)
    if kind is not None:
        query = query.where(Artifact.kind == kind)
    return list(session.scalars(query.order_by(Artifact.id).limit(limit).offset(offset)))


def count_artifacts(session: Session, *, job_id: str, kind: str | None) -> int:
    from sqlalchemy import func

    query = select(func.count()).select_from(Artifact).where(Artifact.job_id == job_id)
    if kind is not None:
        query = query.where(Artifact.kind == kind)
    return session.scalar(query) or 0


def get_artifact(session: Session, *, job_id: str, artifact_id: int) -> Artifact | None:
    return session.scalars(select(Artifact).where(Artifact.id == artifact_id, Artifact.job_id == job_id)).one_or_none()
