"""The lab's web page: static files under ``/ui`` (no build step, no CDN), and ``/`` redirecting to it.

The page itself needs no API key to load; every API call it makes carries the key the person typed in.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "static"
UI_PATH = "/ui"


def mount_web(app: FastAPI) -> None:
    """Serve ``static/`` at ``/ui/`` (``index.html`` for the folder) and redirect ``/`` there."""

    @app.get("/", include_in_schema=False)
    def _root() -> RedirectResponse:
        return RedirectResponse(f"{UI_PATH}/", status_code=307)

    app.mount(UI_PATH, StaticFiles(directory=STATIC_DIR, html=True), name="web")
