"""``GET /healthz``: no auth; says whether the database answers."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, Response, status
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from app.api.deps import ServicesDep
from app.schemas import Health

router = APIRouter(tags=["health"])


def _version() -> str:
    try:
        return version("genmix")
    except PackageNotFoundError:
        return "unknown"


def _ping(services: ServicesDep) -> bool:
    try:
        with services.db.session() as session:
            session.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


@router.get(
    "/healthz", response_model=Health, responses={503: {"model": Health, "description": "the database does not answer"}}
)
async def healthz(services: ServicesDep, response: Response) -> Health:
    ok = await run_in_threadpool(_ping, services)
    if not ok:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Health(status="ok" if ok else "degraded", database="ok" if ok else "unreachable", version=_version())
