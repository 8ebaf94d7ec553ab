"""Builds the FastAPI app: one settings object, one database, thin routers; never imports torch.

``uvicorn app.main:create_app --factory`` serves it; ``genmix serve`` does that plus migrations and a worker.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import Depends, FastAPI
from starlette.types import ASGIApp

from app.api.deps import Services, get_principal
from app.api.docs import AUTHENTICATED, COMMON, errors
from app.api.fastpath import SampleFastPath
from app.api.routes import artifacts, datasets, health, jobs, samples
from app.cache import BytesCache
from app.dbfaults import DatabaseFaults, install_database_fault_handlers
from app.errors import RequestGuard, install_error_handlers
from app.security import KeyCache
from app.web import mount_web
from core.db.session import Database
from core.settings import Settings, get_settings
from core.storage import ArtifactStore

log = logging.getLogger("genmix.api")


class GenMixAPI(FastAPI):
    """FastAPI with :class:`SampleFastPath` outside every middleware, so bulk PNG requests skip them all, and
    :class:`~app.errors.RequestGuard` (host, NUL, body size) in front of everything else."""

    def build_middleware_stack(self) -> ASGIApp:
        services: Services = self.state.services
        guarded = RequestGuard(super().build_middleware_stack(), allowed_hosts=services.settings.allowed_hosts,
                               max_body_bytes=services.settings.request_max_bytes)  # fmt: skip
        return DatabaseFaults(SampleFastPath(guarded, services))


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings.ensure_dirs()
    services = Services(
        settings=settings,
        db=Database(settings.database_url),
        store=ArtifactStore(settings.artifacts),
        keys=KeyCache(settings.api_key_cache_seconds),
        samples=BytesCache(settings.sample_cache_bytes),
        decode_slots=anyio.CapacityLimiter(settings.upload_max_concurrent),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        services.db.dispose()

    app = GenMixAPI(
        title="GenMix",
        summary="Generative + mixup augmentation for small, imbalanced medical image sets.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.services = services
    install_error_handlers(app)
    install_database_fault_handlers(app)
    app.include_router(health.router, responses=errors(*COMMON))
    authenticated = [Depends(get_principal)]
    for module in (datasets, jobs, artifacts, samples):
        app.include_router(module.router, dependencies=authenticated, responses=errors(*AUTHENTICATED))
    mount_web(app)
    return app
