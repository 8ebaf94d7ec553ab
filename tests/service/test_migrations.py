"""Alembic migrations create every table on an empty PostgreSQL (and SQLite) database and drop them cleanly."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, inspect

from core.db import (
    migrate,
    models,  # noqa: F401  (registers the tables)
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


def test_postgresql_upgrade_and_downgrade() -> None:
    url = create_database()
    try:
        _round_trip(url)
        engine = create_engine(url)
        try:
            columns = {c["name"] for c in inspect(engine).get_columns("runs")}
        finally:
            engine.dispose()
        assert {"accuracy", "macro_f1", "balanced_accuracy", "auc"} <= columns
    finally:
        drop_database(url)


def test_sqlite_upgrade_and_downgrade(tmp_path: Path) -> None:
    _round_trip(f"sqlite:///{tmp_path / 'genmix.db'}")
