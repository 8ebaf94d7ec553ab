"""Typed path and query parameters, bounded to what the database stores, so a value out of range is a 422
that OpenAPI documents, never a ``DataError`` from PostgreSQL.

Integer ids and labels are 32-bit columns; dataset and job ids are UUIDs; offsets are capped well inside
``BIGINT``. A client sees the same bounds in ``/openapi.json``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Path, Query

from core.names import ARTIFACT_KINDS

INT32_MAX = 2**31 - 1
"""Largest value of an ``INTEGER`` column (sample, artifact and event ids, labels)."""
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
MAX_OFFSET = INT32_MAX
MAX_LIMIT = 500

JobId = Annotated[str, Path(pattern=UUID_PATTERN, max_length=36, description="a job id (UUID)")]
DatasetId = Annotated[str, Path(pattern=UUID_PATTERN, max_length=36, description="a dataset id (UUID)")]
SampleId = Annotated[int, Path(ge=1, le=INT32_MAX, description="a sample id")]
ArtifactId = Annotated[int, Path(ge=1, le=INT32_MAX, description="an artifact id")]
JobIdQuery = Annotated[
    str | None, Query(pattern=UUID_PATTERN, max_length=36, description="only this job's (a job id, UUID)")
]
Label = Annotated[int | None, Query(ge=0, le=INT32_MAX, description="class index (for GenMix: the dominant class)")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="items to skip")]
ArtifactKind = Literal[ARTIFACT_KINDS]  # type: ignore[valid-type]
ArtifactKindQuery = Annotated[ArtifactKind | None, Query(description="only artifacts of this kind")]


Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"items per page (at most {MAX_LIMIT})")]
