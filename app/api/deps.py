"""Typed dependencies, so every route reads as its signature: ``SessionDep``, ``PrincipalDep``..."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated

import anyio
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.cache import BytesCache
from app.security import KeyCache, Principal, authenticate
from core.db.session import Database
from core.settings import Settings
from core.storage import ArtifactStore


@dataclass
class Services:
    """Everything a request may need, built once per app in :func:`app.main.create_app`."""

    settings: Settings
    db: Database
    store: ArtifactStore
    keys: KeyCache
    samples: BytesCache
    decode_slots: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(2))
    """Uploads decoded at once in this process (``GENMIX_UPLOAD_MAX_CONCURRENT``)."""


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_settings_dep(services: ServicesDep) -> Settings:
    return services.settings


def get_store(services: ServicesDep) -> ArtifactStore:
    return services.store


def get_session(services: ServicesDep) -> Iterator[Session]:
    with services.db.session() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
StoreDep = Annotated[ArtifactStore, Depends(get_store)]
SessionDep = Annotated[Session, Depends(get_session)]

_bearer = HTTPBearer(auto_error=False, description="an API key from `genmix apikey create`")
_UNAUTHORIZED = HTTPException(
    status.HTTP_401_UNAUTHORIZED, detail="a valid API key is required", headers={"WWW-Authenticate": "Bearer"}
)


def _check_key(db: Database, token: str) -> Principal | None:
    with db.session() as session:
        return authenticate(session, token)


async def get_principal(
    services: ServicesDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """The caller behind ``Authorization: Bearer <key>``; anything else is 401 (fails closed)."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise _UNAUTHORIZED
    token = credentials.credentials
    principal = services.keys.get(token)
    if principal is None:
        principal = await run_in_threadpool(_check_key, services.db, token)
        if principal is None:
            raise _UNAUTHORIZED
        services.keys.put(token, principal)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def not_found(what: str) -> HTTPException:
    """The same 404 for "does not exist" and "belongs to someone else"."""
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"{what} not found")
