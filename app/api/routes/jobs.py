"""``/jobs``: launch (idempotent), list, read with results, cancel, and a server-sent event stream."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response, status
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from app.api.deps import PrincipalDep, ServicesDep, SessionDep, not_found
from app.api.docs import errors
from app.api.params import INT32_MAX, JobId, Limit, Offset
from app.api.presenters import job_out
from app.schemas import JobCreate, JobOut, Page
from core.crud import jobs as crud
from core.crud.events import events_after
from core.db.orm import ApiKey, Job
from core.jobspec import checkpoint_problems
from core.jobstate import TERMINAL, JobStatus
from core.queue import enqueue_job

log = logging.getLogger("genmix.api")
router = APIRouter(prefix="/jobs", tags=["jobs"])
SSE_EVENT = {
    "type": "object",
    "description": "one server-sent event; `data` is JSON",
    "properties": {"event": {"type": "string"}, "data": {"type": "string"}, "id": {"type": "string"},
                   "retry": {"type": "integer"}},
}  # fmt: skip


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    responses={
        **errors(404, 413, 503),
        200: {"model": JobOut, "description": "the job this Idempotency-Key already created (same body)"},
        409: {
            **errors(409)[409],
            "description": "Idempotency-Key reused with a different body, or the job to extend has not ended",
        },
    },
)
def create_job(
    spec: JobCreate,
    request: Request,
    session: SessionDep,
    services: ServicesDep,
    principal: PrincipalDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> Any:
    """Queue an experiment, or an extension of an ended one (``extends``: its finished runs are reused). The
    message (only the job id) is published after the job row is committed."""
    problems = checkpoint_problems(spec, services.settings)
    if problems:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="; ".join(problems))
    try:
        job, created = crud.create_job(
            session, services.settings, owner=principal.owner, spec=spec, idempotency_key=idempotency_key
        )
    except crud.DatasetNotFoundError:
        raise not_found("dataset") from None
    except crud.ExtendedJobNotFoundError:
        raise not_found("job to extend") from None
    except crud.ExtendedJobActiveError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    except crud.ExtensionConflictError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    except crud.IdempotencyConflictError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    if created:
        try:
            enqueue_job(services.settings, job_id=job.id, queue=job.queue)
        except Exception as exc:  # the broker is down: the job is committed queued, and the database is the truth
            log.warning("job %s: could not publish it now (%s: %s); the worker sweep publishes it once the broker "
                        "is back (GENMIX_REQUEUE_QUEUED_AFTER)", job.id, type(exc).__name__, exc)  # fmt: skip
    body = job_out(request, job).model_dump(mode="json")
    return JSONResponse(body, status_code=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK)


@router.get("", response_model=Page[JobOut])
def list_jobs(
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    status_filter: Annotated[JobStatus | None, Query(alias="status")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[JobOut]:
    rows, count = crud.list_jobs(session, owner=principal.owner, status=status_filter, limit=limit, offset=offset)
    return Page(data=[job_out(request, row) for row in rows], count=count)


@router.get("/{job_id}", response_model=JobOut, responses=errors(404))
def get_job(job_id: JobId, request: Request, session: SessionDep, principal: PrincipalDep) -> JobOut:
    """Status, stage, progress (step, total, ETA), attempts, error, and results per arm and seed."""
    job = crud.get_job(session, owner=principal.owner, job_id=job_id, with_runs=True)
    if job is None:
        raise not_found("job")
    return job_out(request, job, with_results=True)


@router.post(
    "/{job_id}/cancel", response_model=JobOut, status_code=status.HTTP_202_ACCEPTED, responses=errors(404, 409)
)
def cancel_job(job_id: JobId, request: Request, session: SessionDep, principal: PrincipalDep) -> JobOut:
    """Ask a job to stop: a queued job is cancelled at once; a running one stops at its next step or epoch."""
    job = crud.get_job(session, owner=principal.owner, job_id=job_id)
    if job is None:
        raise not_found("job")
    try:
        job = crud.request_cancel(session, job=job)
    except crud.JobFinishedError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    return job_out(request, job)


def _snapshot(
    services: ServicesDep, job_id: str, after_id: int, key_id: str
) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
    """New events and the progress; None once the job is gone or the stream's API key was revoked."""
    with services.db.session() as session:
        job = session.get(Job, job_id)
        key = session.get(ApiKey, key_id)
        if job is None or key is None or key.revoked_at is not None:
            return None
        events = [
            {"id": e.id, "kind": e.kind, "data": {**e.data, "at": e.created_at.isoformat()}}
            for e in events_after(session, job_id=job_id, after_id=after_id)
        ]
        progress = {
            "status": job.status,
            "stage": job.stage,
            "stage_index": job.stage_index,
            "stage_count": job.stage_count,
            "step": job.step,
            "total": job.total,
            "eta_seconds": job.eta_seconds,
            "attempts": job.attempts,
            "metrics": job.progress_metrics,
        }
        return events, progress


def _sse(kind: str, data: dict[str, Any], event_id: int | None = None) -> str:
    lines = [f"id: {event_id}"] if event_id is not None else []
    lines += [f"event: {kind}", f"data: {json.dumps(data, separators=(',', ':'))}"]
    return "\n".join(lines) + "\n\n"


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {"schema": SSE_EVENT}}, "description": "server-sent events"},
        **errors(404),
    },
)
def job_events(
    job_id: JobId,
    request: Request,
    session: SessionDep,
    services: ServicesDep,
    principal: PrincipalDep,
    follow: bool = True,
    last_event_id: Annotated[int, Header(ge=0, le=INT32_MAX, description="resume after this event id")] = None,  # type: ignore[assignment]
) -> Response:
    """Server-sent events: ``status``, ``stage``, ``run_finished``, ``redelivered``, ``resumed``... from the
    job's log (with ids, so ``Last-Event-ID`` resumes), and ``progress`` whenever the step changes. Ends once
    the job is finished (or at once with ``follow=false``), and within ``GENMIX_SSE_POLL_INTERVAL`` of the
    stream's API key being revoked (an ``end`` event with ``reason``)."""
    if crud.get_job(session, owner=principal.owner, job_id=job_id) is None:
        raise not_found("job")
    session.close()
    poll = services.settings.sse_poll_interval

    async def stream() -> AsyncIterator[str]:
        after = last_event_id or 0
        last_progress: dict[str, Any] | None = None
        idle = 0.0
        yield "retry: 2000\n\n"
        while True:
            snapshot = await run_in_threadpool(_snapshot, services, job_id, after, principal.key_id)
            if snapshot is None:
                yield _sse("end", {"status": None, "reason": "the job is gone or the API key was revoked"})
                return
            events, progress = snapshot
            for event in events:
                after = event["id"]
                yield _sse(event["kind"], event["data"], event["id"])
            if progress != last_progress:
                last_progress = progress
                yield _sse("progress", progress)
            if events:
                idle = 0.0
                continue
            if JobStatus(progress["status"]) in TERMINAL or not follow:
                yield _sse("end", {"status": progress["status"]})
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(poll)
            idle += poll
            if idle >= 15:
                idle = 0.0
                yield ": keep-alive\n\n"

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
