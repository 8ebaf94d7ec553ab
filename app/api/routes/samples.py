"""``/samples``: list real / synthetic / GenMix sample records, and serve one PNG by id.

Samples never change once written, so ``GET /samples/{id}`` keeps a byte-bounded cache of PNGs (and their
owner) in memory. :mod:`app.api.fastpath` serves that same endpoint without FastAPI's routing overhead;
the route here documents it in OpenAPI and answers whatever the fast path hands on.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from app.api.deps import PrincipalDep, Services, ServicesDep, SessionDep, not_found
from app.api.presenters import sample_out
from app.schemas import Page, SampleOut
from core.crud import samples as crud
from core.db.orm import Job
from core.names import SampleKind
from core.storage import UnsafePathError

router = APIRouter(prefix="/samples", tags=["samples"])

PNG_HEADERS = {"Cache-Control": "private, max-age=31536000, immutable"}


@router.get("", response_model=Page[SampleOut])
def list_samples(
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    job_id: str | None = None,
    kind: SampleKind | None = None,
    label: Annotated[int | None, Query(ge=0, description="class index (for GenMix: the dominant class)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Page[SampleOut]:
    """Sample records with kind, label, soft label, λ and both parents (for GenMix), and the PNG's URL."""
    rows, count = crud.list_samples(
        session,
        owner=principal.owner,
        job_id=job_id,
        kind=kind.value if kind else None,
        label=label,
        limit=limit,
        offset=offset,
    )
    job_ids = {row.job_id for row in rows}
    names = {
        job_id: spec.get("class_names")
        for job_id, spec in session.execute(select(Job.id, Job.spec).where(Job.id.in_(job_ids)))
    }
    return Page(data=[sample_out(request, row, names.get(row.job_id)) for row in rows], count=count)


def load_sample(services: Services, sample_id: int) -> tuple[str, bytes] | None:
    with services.db.session() as session:
        location = crud.sample_location(session, sample_id=sample_id)
    if location is None:
        return None
    owner, stored = location
    try:
        return owner, services.store.resolve(stored).read_bytes()
    except (UnsafePathError, OSError):
        return None


@router.get(
    "/{sample_id}",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "the sample as PNG"}},
)
async def get_sample_png(sample_id: int, services: ServicesDep, principal: PrincipalDep) -> Response:
    entry = services.samples.get(sample_id)
    if entry is None:
        entry = await run_in_threadpool(load_sample, services, sample_id)
        if entry is None:
            raise not_found("sample")
        services.samples.put(sample_id, entry[0], entry[1])
    owner, data = entry
    if owner != principal.owner:
        raise not_found("sample")
    return Response(content=data, media_type="image/png", headers=PNG_HEADERS)
