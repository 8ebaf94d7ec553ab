"""The API during a database outage (a restart, a failover, the server down): a request that needs the database
answers ``503 Service Unavailable`` with the usual ``{"detail": "…"}`` body and ``Retry-After``, instead of a
plain-text 500. The key check counts too: an unknown key during an outage is 503, not 401, since it could not
be checked. ``GET /healthz`` says ``database: unreachable`` (503) on its own.

Two places catch it: an exception handler inside FastAPI's stack (every route and dependency), and
:class:`DatabaseFaults` around the sample fast path, which runs outside FastAPI.
"""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.db.faults import database_unavailable

log = logging.getLogger("genmix.api")
RETRY_AFTER_SECONDS = 5
DETAIL = "the database is unavailable right now; nothing was changed, try again in a few seconds"


def _headers() -> dict[str, str]:
    return {"Retry-After": str(RETRY_AFTER_SECONDS)}


async def _handler(request: Request, exc: Exception) -> JSONResponse:
    if not database_unavailable(exc):
        raise exc  # a real error: the server's 500
    log.warning("%s %s: 503, the database is unreachable (%s)", request.method, request.url.path,
                (str(exc).strip().splitlines() or [type(exc).__name__])[0])  # fmt: skip
    return JSONResponse({"detail": DETAIL}, status_code=503, headers=_headers())


def install_database_fault_handlers(app: FastAPI) -> None:
    app.add_exception_handler(sa_exc.DBAPIError, _handler)
    app.add_exception_handler(sa_exc.TimeoutError, _handler)


class DatabaseFaults:
    """ASGI wrapper: a database outage raised before the answer started becomes the same 503."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if started or not database_unavailable(exc):
                raise
            body = json.dumps({"detail": DETAIL}).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                       (b"retry-after", str(RETRY_AFTER_SECONDS).encode())]  # fmt: skip
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": body})
