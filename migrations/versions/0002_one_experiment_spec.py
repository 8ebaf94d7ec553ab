"""Stored job specs follow the one experiment spec: ``generator`` → ``generator_settings``, a classifier dict
→ ``classifier`` (its name) + ``classifier_settings``, and MixUp's own ``mixup_alpha`` (before, MixUp used
``alpha``, so an old job keeps its behaviour). Data only: no table changes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 21:30:00
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_jobs = sa.table("jobs", sa.column("id", sa.String), sa.column("spec", sa.JSON))


def _upgraded(spec: dict[str, Any]) -> dict[str, Any]:
    spec = dict(spec)
    if "generator" in spec:
        spec["generator_settings"] = spec.pop("generator") or {}
    classifier = spec.get("classifier")
    if isinstance(classifier, dict):
        settings = dict(classifier)
        spec["classifier"] = settings.pop("name", None)
        spec["classifier_settings"] = settings
    if "alpha" in spec and "mixup_alpha" not in spec:
        spec["mixup_alpha"] = spec["alpha"]
    return spec


def _downgraded(spec: dict[str, Any]) -> dict[str, Any]:
    spec = dict(spec)
    if "generator_settings" in spec:
        spec["generator"] = spec.pop("generator_settings") or {}
    if "classifier_settings" in spec:
        settings = spec.pop("classifier_settings") or {}
        name = spec.get("classifier")
        spec["classifier"] = {**({"name": name} if name else {}), **settings}
    spec.pop("mixup_alpha", None)
    return spec


def _rewrite(change: Any) -> None:
    bind = op.get_bind()
    for job_id, spec in bind.execute(sa.select(_jobs.c.id, _jobs.c.spec)).all():
        if isinstance(spec, dict):
            bind.execute(sa.update(_jobs).where(_jobs.c.id == job_id).values(spec=change(spec)))


def upgrade() -> None:
    _rewrite(_upgraded)


def downgrade() -> None:
    _rewrite(_downgraded)
