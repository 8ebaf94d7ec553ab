"""``/samples``: list real / synthetic / GenMix sample records, and serve one PNG by id.

Samples never change once written, so ``GET /samples/{id}`` keeps a byte-bounded cache of PNGs in memory,
keyed by (owner, id): a sample that does not exist and another owner's take the same path (one owner-scoped
query, no file read), so neither the answer nor its timing tells them apart. :mod:`app.api.fastpath` serves
that same endpoint without FastAPI's routing overhead; the route here documents it in OpenAPI and answers
whatever the fast path hands on.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from app.api.deps import PrincipalDep, Services, ServicesDep, SessionDep, not_found
from app.api.docs import errors
from app.api.params import JobIdQuery, Label, Limit, Offset, SampleId
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
    job_id: JobIdQuery = None,
    kind: SampleKind | None = None,
    label: Label = None,
    limit: Limit = 50,
    offset: Offset = 0,
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


def load_sample(services: Services, sample_id: int, owner: str) -> bytes | None:
    """The PNG of ``owner``'s sample ``sample_id``; None when there is none (missing and another owner's alike)."""
    with services.db.session() as session:
        stored = crud.sample_location(session, sample_id=sample_id, owner=owner)
    if stored is None:
        return None
    try:
        return services.store.resolve(stored).read_bytes()
    except (UnsafePathError, OSError):
        return None


async def sample_png(services: Services, sample_id: int, owner: str) -> bytes | None:
    """From the (owner, id) cache, else the database and the disk (then cached)."""
    entry = services.samples.get((owner, sample_id))
    if entry is not None:
        return entry[1]
    data = await run_in_threadpool(load_sample, services, sample_id, owner)
    if data is not None:
        services.samples.put((owner, sample_id), owner, data)
    return data


@router.get(
    "/{sample_id}",
    response_class=Response,
    responses={
        200: {
            "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
            "description": "the sample as PNG",
        },
        **errors(404),
    },
)
async def get_sample_png(sample_id: SampleId, services: ServicesDep, principal: PrincipalDep) -> Response:
    data = await sample_png(services, sample_id, principal.owner)
    if data is None:
        raise not_found("sample")
    return Response(content=data, media_type="image/png", headers=PNG_HEADERS)
