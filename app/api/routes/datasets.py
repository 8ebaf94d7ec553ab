"""``/datasets``: upload (streamed, capped, validated; nothing kept on failure), list, read, delete."""

from __future__ import annotations

import json
import re
from pathlib import PurePath

from fastapi import APIRouter, HTTPException, Request, Response, status
from starlette.concurrency import run_in_threadpool

from app.api.deps import PrincipalDep, ServicesDep, SessionDep, StoreDep, not_found
from app.api.docs import errors
from app.api.params import DatasetId, Limit, Offset
from app.api.presenters import dataset_out
from app.ingest import IngestLimits, UploadError, decode_slot, parse_upload, release_memory
from app.schemas import DatasetOut, Page
from app.uploads import receive_upload
from core.crud import datasets as crud
from core.settings import Settings
from models.datasets import FRAME_RULES, ROI_MODES, WINDOWS, PixelRules
from models.errors import DatasetError, clip

router = APIRouter(prefix="/datasets", tags=["datasets"])
MAX_CLASS_NAMES = 1000
"""Most names the ``class_names`` field may give (also bounded by ``GENMIX_DATASET_MAX_CLASSES``)."""
MAX_CLASS_NAME = 200
"""Longest class name (the database column's width)."""


def limits_from(settings: Settings) -> IngestLimits:
    return IngestLimits(
        max_members=settings.zip_max_members,
        max_uncompressed_bytes=settings.zip_max_uncompressed_bytes,
        max_ratio=settings.zip_max_ratio,
        ratio_min_bytes=settings.zip_ratio_min_bytes,
        image_max_pixels=settings.image_max_pixels,
        dataset_max_pixels=settings.dataset_max_pixels,
        formats=tuple(settings.image_formats),
        max_classes=settings.dataset_max_classes,
        max_decoded_bytes=settings.upload_max_decoded_bytes,
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
    if len(names) > MAX_CLASS_NAMES:
        raise UploadError(422, f"class_names has {len(names)} names; at most {MAX_CLASS_NAMES} classes are allowed")
    if any(len(n) > MAX_CLASS_NAME or re.search(r"[\x00-\x1f\x7f]", n) for n in names):
        raise UploadError(422, f"class names must be at most {MAX_CLASS_NAME} characters, without control characters")
    return names


def _image_size(fields: dict[str, str]) -> int | None:
    raw = fields.get("image_size", "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 8 <= int(raw) <= 1024:
        raise UploadError(422, "image_size must be an integer between 8 and 1024")
    return int(raw)


def _number(fields: dict[str, str], name: str) -> float | None:
    raw = fields.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise UploadError(422, f"{name} must be a number, got {clip(raw, 40)!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise UploadError(422, f"{name} must be a finite number")
    return value


def _pixel_rules(fields: dict[str, str]) -> PixelRules:
    """The DICOM and ROI choices of an upload form (window, window_width, window_level, frames, roi, roi_margin)."""
    try:
        return PixelRules.from_fields(
            window=fields.get("window", "").strip() or None,
            window_width=_number(fields, "window_width"),
            window_level=_number(fields, "window_level"),
            frames=fields.get("frames", "").strip() or None,
            roi=fields.get("roi", "").strip() or None,
            roi_margin=_number(fields, "roi_margin"),
        )
    except DatasetError as exc:
        raise UploadError(422, str(exc)) from None


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetOut,
    responses=errors(413, 415, 503),
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
                                "description": "ImageFolder .zip, a .zip of files (DICOM, PNG, JPEG) with a "
                                "labels.csv at its root, or a MedMNIST .npz",
                            },
                            "name": {"type": "string"},
                            "class_names": {"type": "string", "description": "JSON list or comma-separated"},
                            "image_size": {
                                "type": "integer",
                                "description": "resize every image (or ROI crop) to this square",
                            },
                            "window": {
                                "type": "string",
                                "enum": list(WINDOWS),
                                "description": "CT window: a preset, file (the file's own VOI) or custom",
                            },
                            "window_width": {"type": "number", "description": "custom CT window width (HU)"},
                            "window_level": {"type": "number", "description": "custom CT window level (HU)"},
                            "frames": {"type": "string", "enum": list(FRAME_RULES), "description": "multi-frame rule"},
                            "roi": {
                                "type": "string",
                                "enum": list(ROI_MODES),
                                "description": "crop labels.csv ROIs, or ignore them",
                            },
                            "roi_margin": {
                                "type": "number",
                                "description": "context around an ROI, as a fraction of its size",
                            },
                        },
                    }
                }
            },
        }
    },  # fmt: skip
)
async def upload_dataset(request: Request, principal: PrincipalDep, services: ServicesDep) -> DatasetOut:
    """Upload a zip in ImageFolder layout (``<split>/<class>/*`` or ``<class>/*``), a zip of DICOM (or PNG / JPEG)
    files in any folders with a ``labels.csv`` at its root, or a MedMNIST npz."""
    settings = services.settings
    upload = None
    try:
        upload = await receive_upload(request, services.store.uploads, max_bytes=settings.upload_max_bytes)
        assert upload.path is not None
        class_names = _class_names(upload.fields)
        image_size = _image_size(upload.fields)
        pixels = _pixel_rules(upload.fields)
        name = _name(upload.fields, upload.filename)
        limits = limits_from(settings)
        received = upload

        def parse_and_store() -> DatasetOut:
            """Decode, validate and store; the pixels live only inside this call (and its decode slot)."""
            assert received.path is not None
            parsed = failure = None
            try:
                parsed = parse_upload(received.path, limits, filename=received.filename, class_names=class_names,
                                      image_size=image_size, pixels=pixels)  # fmt: skip
                with services.db.session() as session:
                    dataset = crud.create_dataset(session, services.store, owner=principal.owner, name=name,
                                                  imageset=parsed.imageset, data_format=parsed.format,
                                                  sha256=received.sha256, size_bytes=received.size)  # fmt: skip
                    return dataset_out(dataset)
            except UploadError as exc:  # a fresh error: the reader's frames (and their pixels) go with this one
                failure = UploadError(exc.status, exc.detail)
            finally:
                parsed = None
                release_memory()  # hand the freed pixels back to the OS
            raise failure

        async with decode_slot(services.decode_slots):  # at most GENMIX_UPLOAD_MAX_CONCURRENT at once
            return await run_in_threadpool(parse_and_store)
    except UploadError as exc:
        raise HTTPException(exc.status, detail=exc.detail) from None
    finally:
        if upload is not None:
            upload.discard()


@router.get("", response_model=Page[DatasetOut])
def list_datasets(
    session: SessionDep,
    principal: PrincipalDep,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[DatasetOut]:
    rows, count = crud.list_datasets(session, owner=principal.owner, limit=limit, offset=offset)
    return Page(data=[dataset_out(row) for row in rows], count=count)


@router.get("/{dataset_id}", response_model=DatasetOut, responses=errors(404))
def get_dataset(dataset_id: DatasetId, session: SessionDep, principal: PrincipalDep) -> DatasetOut:
    dataset = crud.get_dataset(session, owner=principal.owner, dataset_id=dataset_id)
    if dataset is None:
        raise not_found("dataset")
    return dataset_out(dataset)


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(404, 409))
def delete_dataset(dataset_id: DatasetId, session: SessionDep, store: StoreDep, principal: PrincipalDep) -> Response:
    dataset = crud.get_dataset(session, owner=principal.owner, dataset_id=dataset_id)
    if dataset is None:
        raise not_found("dataset")
    try:
        crud.delete_dataset(session, store, dataset=dataset)
    except crud.DatasetInUseError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)
