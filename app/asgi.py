"""The ASGI application built from the environment, for servers that take ``module:attribute``
(``uvicorn app.asgi:app``, ``granian --interface asgi app.asgi:app``)."""

from __future__ import annotations

from app.main import create_app

app = create_app()
