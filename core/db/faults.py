"""Which database errors mean "the database is unreachable right now" (a restart, an outage, a dropped
connection), as opposed to a bug or a constraint: the API answers those with 503 and ``Retry-After``, and the
workers retry them (:mod:`workers.dbretry`) instead of failing the job."""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

UNAVAILABLE_TYPES: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,  # connection refused or reset, server shutting down or starting up, admin shutdown
    sa_exc.InterfaceError,  # the connection is closed
    sa_exc.TimeoutError,  # no pooled connection came free in time
)


def database_unavailable(error: BaseException) -> bool:
    """True when ``error`` (or what it wraps) says the database could not be reached or dropped the connection."""
    if isinstance(error, UNAVAILABLE_TYPES):
        return True
    return isinstance(error, sa_exc.DBAPIError) and bool(error.connection_invalidated)
