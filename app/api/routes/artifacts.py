"""``/jobs/{id}/artifacts``: files a job wrote, looked up by database id; no client path reaches the disk."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from app.api.deps import PrincipalDep, SessionDep, StoreDep, not_found
from app.api.docs import errors
from app.api.params import ArtifactId, ArtifactKindQuery, JobId, Limit, Offset
from app.api.presenters import artifact_out
from app.schemas import ArtifactOut, Page
from core.crud import artifacts as crud
from core.crud.jobs import get_job
from core.storage import UnsafePathError

router = APIRouter(prefix="/jobs/{job_id}/artifacts", tags=["artifacts"])


@router.get("", response_model=Page[ArtifactOut], responses=errors(404))
def list_artifacts(
    job_id: JobId,
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    kind: ArtifactKindQuery = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[ArtifactOut]:
    """Figures, ``results.json``, the synthetic set, the GenMix export, generator weights and checkpoints."""
    if get_job(session, owner=principal.owner, job_id=job_id) is None:
        raise not_found("job")
    rows = crud.list_artifacts(session, job_id=job_id, kind=kind, limit=limit, offset=offset)
    count = crud.count_artifacts(session, job_id=job_id, kind=kind)
    return Page(data=[artifact_out(request, row) for row in rows], count=count)


@router.get(
    "/{artifact_id}",
    response_class=FileResponse,
    responses={
        200: {
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            "description": "the file (its own media type)",
        },
        **errors(404),
    },
)
def download_artifact(
    job_id: JobId, artifact_id: ArtifactId, session: SessionDep, store: StoreDep, principal: PrincipalDep
) -> FileResponse:
    if get_job(session, owner=principal.owner, job_id=job_id) is None:
        raise not_found("job")
    artifact = crud.get_artifact(session, job_id=job_id, artifact_id=artifact_id)
    if artifact is None:
        raise not_found("artifact")
    try:
        path = store.resolve(artifact.path)
    except UnsafePathError:
        raise not_found("artifact file") from None
    return FileResponse(path, media_type=artifact.media_type, filename=path.name)
