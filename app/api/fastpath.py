"""A lean ASGI path for ``GET /samples/{id}``, the one endpoint clients hit in bulk (image grids, galleries).

It answers exactly as the FastAPI route in ``routes/samples.py`` does (same auth, owner check, 401/404
bodies, headers) but skips routing and dependency resolution: a key-cache hit, a PNG-cache hit and two ASGI
messages. Anything it does not recognise, or any cache miss it cannot settle, goes to FastAPI.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.deps import Services, _check_key
from app.api.params import INT32_MAX
from app.api.routes.samples import PNG_HEADERS, sample_png

_PATH = re.compile(r"^/samples/([0-9]{1,18})$")
_UNAUTHORIZED = json.dumps({"detail": "a valid API key is required"}).encode()
_NOT_FOUND = json.dumps({"detail": "sample not found"}).encode()
_PNG_HEADERS = [(b"content-type", b"image/png")] + [(k.lower().encode(), v.encode()) for k, v in PNG_HEADERS.items()]


class SampleFastPath:
    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        match = _PATH.match(scope["path"])
        if match is None or not 1 <= int(match.group(1)) <= INT32_MAX:  # FastAPI answers those (422)
            return await self.app(scope, receive, send)
        token = _bearer(scope)
        if token is None:
            return await _send(send, 401, _UNAUTHORIZED, [(b"www-authenticate", b"Bearer")], scope)
        principal = self.services.keys.get(token)
        if principal is None:
            principal = await run_in_threadpool(_check_key, self.services.db, token)
            if principal is None:
                return await _send(send, 401, _UNAUTHORIZED, [(b"www-authenticate", b"Bearer")], scope)
            self.services.keys.put(token, principal)
        data = await sample_png(self.services, int(match.group(1)), principal.owner)
        if data is None:
            return await _send(send, 404, _NOT_FOUND, [], scope)
        await send({"type": "http.response.start", "status": 200,
                    "headers": _PNG_HEADERS + [(b"content-length", str(len(data)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else data})


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]], scope: Any) -> None:
    all_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
