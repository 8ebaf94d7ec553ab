"""Datasets keep how their pixels became images (``decode``: window, multi-frame rule, ROI, normalisation and
images per rule) and their patients per split (``patients``); both null for existing rows, npz files and plain
image folders.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("decode", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("patients", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("patients")
        batch.drop_column("decode")
