"""What the API answers when a request is refused, and the guards that refuse before any route runs.

* Error bodies are ``{"detail": "…"}`` (or FastAPI's list of validation problems) and **bounded**: a message
  quotes at most :data:`models.errors.MESSAGE_LIMIT` characters of client input, a detail string is at most
  :data:`DETAIL_LIMIT` characters, a 422 lists at most :data:`MAX_PROBLEMS` problems, and a problem echoes its
  input only when that is a short string or a finite number (``NaN``, ``Infinity``, ``1e400`` and large bodies
  are never echoed, so the encoder cannot fail on them and a 100 MB body cannot come back in the answer).
* :class:`RequestGuard` (pure ASGI, outermost of FastAPI's stack) refuses, before routing: a ``Host`` header
  that is not in ``GENMIX_ALLOWED_HOSTS`` (400; links in answers are built from the host, so an untrusted one
  would be echoed), a NUL byte in the path or query (400; PostgreSQL text cannot hold one), and a body over
  ``GENMIX_REQUEST_MAX_BYTES`` on every route but the dataset upload, which streams under its own cap (413,
  checked on ``Content-Length`` and while the body streams).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from models.errors import MESSAGE_LIMIT, clip

DETAIL_LIMIT = 2000
"""Longest ``detail`` string an error answer carries."""
MAX_PROBLEMS = 20
"""Most validation problems one 422 lists."""
UNBOUNDED_BODY_ROUTES = (("POST", "/datasets"),)
"""Routes whose bodies stream to disk under their own cap (``GENMIX_UPLOAD_MAX_BYTES``)."""


def _echo(value: Any) -> Any:
    """A problem's input when it is small and JSON-safe, else ``None`` (not echoed)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**63 else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return clip(value, MESSAGE_LIMIT) if len(value) <= 4 * MESSAGE_LIMIT else None
    return None


def _loc(loc: Sequence[Any]) -> list[str | int]:
    return [part if isinstance(part, int) and not isinstance(part, bool) else clip(part, 100) for part in loc[:10]]


def validation_problems(errors: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """pydantic / FastAPI errors as bounded, always-encodable problems: ``type``, ``loc``, ``msg`` (+ ``input``)."""
    problems = []
    for error in list(errors)[:MAX_PROBLEMS]:
        problem: dict[str, Any] = {
            "type": clip(error.get("type", "value_error"), 100),
            "loc": _loc(error.get("loc", ())),
            "msg": clip(error.get("msg", ""), DETAIL_LIMIT // 2),
        }
        shown = _echo(error.get("input"))
        if shown is not None:
            problem["input"] = shown
        problems.append(problem)
    return problems


def error_body(detail: Any) -> dict[str, Any]:
    if isinstance(detail, str):
        return {"detail": clip(detail, DETAIL_LIMIT)}
    if isinstance(detail, list) and all(isinstance(item, dict) for item in detail):
        return {"detail": validation_problems(detail)}
    return {"detail": clip(detail, DETAIL_LIMIT)}


async def _validation_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": validation_problems(exc.errors())}, status_code=422)


def allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (Starlette's 405 names only the first matching route's)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match != Match.NONE and isinstance(route, APIRoute | Route):
            methods |= set(route.methods or ())
    return ", ".join(sorted(methods))


async def _http_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = allowed_methods(request)
    if exc.status_code in (204, 304):
        return JSONResponse(None, status_code=exc.status_code, headers=headers)
    return JSONResponse(error_body(exc.detail), status_code=exc.status_code, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)


# ------------------------------------------------------------------------------------------------ guard


def host_allowed(host: str, allowed: Sequence[str]) -> bool:
    """``host`` (without the port) matches an entry: exact, ``*`` (any), or ``*.example.org`` (subdomains)."""
    host = host.lower().rstrip(".")
    for pattern in allowed:
        pattern = pattern.lower().rstrip(".")
        if pattern == "*" or pattern == host:
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
    return False


def _host_of(value: str) -> str:
    value = value.strip()
    if value.startswith("["):  # [::1]:8000
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


async def send_error(send: Send, status: int, detail: str, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """Host, NUL and body-size checks for every HTTP request (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: Sequence[str], max_body_bytes: int,
                 exempt_paths: Sequence[str] = ("/healthz",)) -> None:  # fmt: skip
        self.app = app
        self.allowed_hosts = tuple(allowed_hosts)
        self.max_body_bytes = max_body_bytes
        self.exempt_paths = tuple(exempt_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        problem = self.refusal(scope)
        if problem is not None:
            return await send_error(send, *problem)
        if (scope["method"], scope["path"].rstrip("/")) in UNBOUNDED_BODY_ROUTES:
            return await self.app(scope, receive, send)
        length = _header(scope, b"content-length")
        limit = self.max_body_bytes
        too_large = f"the request body is larger than the {limit} byte limit"
        if length is not None and length.isdigit() and int(length) > limit:
            return await send_error(send, 413, too_large)
        chunks: list[bytes] = []
        size = 0
        while True:  # small bodies only (JSON): read them whole under the cap, then hand them on
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return await send_error(send, 413, too_large)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    def refusal(self, scope: Scope) -> tuple[int, str] | None:
        """``(status, detail)`` when the request is refused before routing, else None."""
        path = scope["path"]
        if "\x00" in path or b"\x00" in unquote_to_bytes(scope.get("query_string", b"")):
            return 400, "NUL bytes are not allowed in the path or the query"
        if path not in self.exempt_paths:
            host = _host_of((_header(scope, b"host") or "").strip())
            if not host or not host_allowed(host, self.allowed_hosts):
                return 400, "the Host header names a host this service does not serve (GENMIX_ALLOWED_HOSTS)"
        return None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None
