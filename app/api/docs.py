"""The error answers every route documents in OpenAPI (schemathesis checks that each answer is documented)."""

from __future__ import annotations

from typing import Any

from app.schemas import ErrorOut, ValidationErrorOut

ERRORS: dict[int, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "refused before routing: a NUL byte in the path or query, an untrusted "
          "Host header, or a malformed multipart body"},
    401: {"model": ErrorOut, "description": "no valid API key (`Authorization: Bearer <key>`)",
          "headers": {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}}},
    404: {"model": ErrorOut, "description": "no such item for this key's owner (another owner's is the same 404)"},
    409: {"model": ErrorOut, "description": "conflicts with the item's state"},
    413: {"model": ErrorOut, "description": "the request body (or an upload, or what it expands to) is over a limit"},
    415: {"model": ErrorOut, "description": "not multipart/form-data, or neither a .zip nor an .npz"},
    422: {"model": ValidationErrorOut, "description": "invalid parameters or body (each problem names its field)"},
    503: {"model": ErrorOut, "description": "a dependency (the database or the job queue) is unavailable"},
}  # fmt: skip


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers ``codes``, for a route's or a router's ``responses=``."""
    return {code: ERRORS[code] for code in codes}


COMMON = (400, 422)
"""Answers any route may give (the request guard, parameter validation)."""
AUTHENTICATED = (*COMMON, 401)
"""And every route behind the API key."""
