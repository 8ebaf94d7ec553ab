"""``/datasets``: upload (streamed, capped, validated; nothing kept on failure), list, read, delete."""

from __future__ import annotations

import json
import re
from pathlib import PurePath
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from app.api.deps import PrincipalDep, ServicesDep, SessionDep, StoreDep, not_found
from app.api.presenters import dataset_out
from app.ingest import IngestLimits, UploadError, parse_upload
from app.schemas import DatasetOut, Page
from app.uploads import receive_upload
from core.crud import datasets as crud
from core.settings import Settings

router = APIRouter(prefix="/datasets", tags=["datasets"])


def limits_from(settings: Settings) -> IngestLimits:
    return IngestLimits(
        max_members=settings.zip_max_members,
        max_uncompressed_bytes=settings.zip_max_uncompressed_bytes,
        max_ratio=settings.zip_max_ratio,
        ratio_min_bytes=settings.zip_ratio_min_bytes,
        image_max_pixels=settings.image_max_pixels,
        dataset_max_pixels=settings.dataset_max_pixels,
        formats=tuple(settings.image_formats),
    )


def _name(fields: dict[str, str], filename: str | None) -> str:
    name = fields.get("name", "").strip() or PurePath(filename or "dataset").stem
    name = re.sub(r"[\x00-\x1f\x7f]", "", name)[:200]
    return name or "dataset"


def _class_names(fields: dict[str, str]) -> list[str] | None:
    raw = fields.get("class_names", "").strip()
    if not raw:
        return None
    try:
        names = json.loads(raw) if raw.startswith("[") else [part.strip() for part in raw.split(",")]
    except json.JSONDecodeError:
        raise UploadError(422, "class_names must be a JSON list or comma-separated names") from None
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise UploadError(422, "class_names must be a list of non-empty strings")
    return names


def _image_size(fields: dict[str, str]) -> int | None:
    raw = fields.get("image_size", "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 8 <= int(raw) <= 1024:
        raise UploadError(422, "image_size must be an integer between 8 and 1024")
    return int(raw)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {
                                "type": "string",
                                "format": "binary",
                                "description": "ImageFolder .zip or MedMNIST .npz",
                            },
                            "name": {"type": "string"},
                            "class_names": {"type": "string", "description": "JSON list or comma-separated"},
                            "image_size": {
                                "type": "integer",
                                "description": "resize every image to this square",
                            },
                        },
                    }
                }
            },
        }
    },  # fmt: skip
)
async def upload_dataset(request: Request, principal: PrincipalDep, services: ServicesDep) -> DatasetOut:
    """Upload a zip in ImageFolder layout (``<split>/<class>/*`` or ``<class>/*``) or a MedMNIST npz."""
    settings = services.settings
    upload = None
    try:
        upload = await receive_upload(request, services.store.uploads, max_bytes=settings.upload_max_bytes)
        assert upload.path is not None
        class_names = _class_names(upload.fields)
        image_size = _image_size(upload.fields)
        parsed = await run_in_threadpool(
            parse_upload,
            upload.path,
            limits_from(settings),
            filename=upload.filename,
            class_names=class_names,
            image_size=image_size,
        )

        def store() -> DatasetOut:
            with services.db.session() as session:
                dataset = crud.create_dataset(
                    session,
                    services.store,
                    owner=principal.owner,
                    name=_name(upload.fields, upload.filename),
                    imageset=parsed.imageset,
                    data_format=parsed.format,
                    sha256=upload.sha256,
                    size_bytes=upload.size,
                )
                return dataset_out(dataset)

        return await run_in_threadpool(store)
    except UploadError as exc:
        raise HTTPException(exc.status, detail=exc.detail) from None
    finally:
        if upload is not None:
            upload.discard()


@router.get("", response_model=Page[DatasetOut])
def list_datasets(
    session: SessionDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Page[DatasetOut]:
    rows, count = crud.list_datasets(session, owner=principal.owner, limit=limit, offset=offset)
    return Page(data=[dataset_out(row) for row in rows], count=count)


@router.get("/{dataset_id}", response_model=DatasetOut)
def get_dataset(dataset_id: str, session: SessionDep, principal: PrincipalDep) -> DatasetOut:
    dataset = crud.get_dataset(session, owner=principal.owner, dataset_id=dataset_id)
    if dataset is None:
        raise not_found("dataset")
    return dataset_out(dataset)


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_dataset(dataset_id: str, session: SessionDep, store: StoreDep, principal: PrincipalDep) -> Response:
    dataset = crud.get_dataset(session, owner=principal.owner, dataset_id=dataset_id)
    if dataset is None:
        raise not_found("dataset")
    try:
        crud.delete_dataset(session, store, dataset=dataset)
    except crud.DatasetInUseError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)
