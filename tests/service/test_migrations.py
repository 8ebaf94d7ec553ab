"""Alembic migrations build exactly the ORM's schema on an empty PostgreSQL (and SQLite) database, and drop it
cleanly: after ``upgrade head``, Alembic's autogenerate comparison of the database with ``Base.metadata`` finds
no difference (tables, columns, types, nullability, server defaults, indexes, unique and foreign keys), so a
model change without its migration fails here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from core.db import (
    migrate,
    orm,  # noqa: F401  (registers the tables)
)
from core.db.base import Base
from service.helpers import create_database, drop_database

TABLES = set(Base.metadata.tables)


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _drift(url: str) -> list[Any]:
    """What ``alembic revision --autogenerate`` would write to bring the database to the ORM's schema."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            options = {"compare_type": True, "compare_server_default": True}
            return compare_metadata(MigrationContext.configure(connection, opts=options), Base.metadata)
    finally:
        engine.dispose()


def _round_trip(url: str) -> None:
    assert _tables(url) == set()
    migrate.upgrade(url)
    assert _tables(url) == TABLES | {"alembic_version"}
    assert migrate.is_current(url)
    migrate.downgrade(url, "base")
    assert _tables(url) == {"alembic_version"}
    assert migrate.current_revision(url) is None
    migrate.upgrade(url)
    assert _tables(url) >= TABLES
    drift = _drift(url)
    assert drift == [], "the migrations and core/db/orm.py disagree:\n" + "\n".join(map(repr, drift))


def test_postgresql_upgrade_and_downgrade() -> None:
    url = create_database()
    try:
        _round_trip(url)
    finally:
        drop_database(url)


def test_sqlite_upgrade_and_downgrade(tmp_path: Path) -> None:
    _round_trip(f"sqlite:///{tmp_path / 'genmix.db'}")
