"""Receive a multipart upload by streaming it to disk under a byte cap (Starlette's form parser has no cap).

The file part goes straight to a temporary file under the artifact root's ``uploads/`` folder with a random
name (the client's filename is kept only as a hint, never as a path) and is hashed on the way. Past the cap
the request is answered 413 and the partial file deleted.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from app.ingest import UploadError

_FORM_OVERHEAD = 64 * 1024
"""Bytes allowed on top of the file cap for boundaries, headers and the small text fields."""


@dataclass
class ReceivedUpload:
    path: Path | None = None
    filename: str | None = None
    size: int = 0
    sha256: str = ""
    fields: dict[str, str] = field(default_factory=dict)

    def discard(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


class _FormCollector:
    """python-multipart callbacks: one file field written to disk, small text fields kept in memory."""

    def __init__(self, directory: Path, file_field: str, max_bytes: int, max_fields: int, max_field_bytes: int):
        self.directory = directory
        self.file_field = file_field
        self.max_bytes = max_bytes
        self.max_fields = max_fields
        self.max_field_bytes = max_field_bytes
        self.result = ReceivedUpload()
        self._hash = hashlib.sha256()
        self._fh: IO[bytes] | None = None
        self._headers: dict[str, str] = {}
        self._header_field = b""
        self._header_value = b""
        self._field_name: str | None = None
        self._field_value = bytearray()
        self._is_file = False

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda data, start, end: self._add_header_field(data[start:end]),
            "on_header_value": lambda data, start, end: self._add_header_value(data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": lambda data, start, end: self._data(data[start:end]),
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._headers = {}
        self._field_name = None
        self._field_value = bytearray()
        self._is_file = False

    def _add_header_field(self, data: bytes) -> None:
        self._header_field += data

    def _add_header_value(self, data: bytes) -> None:
        self._header_value += data

    def _header_end(self) -> None:
        self._headers[self._header_field.decode("latin-1").lower()] = self._header_value.decode("latin-1")
        self._header_field = b""
        self._header_value = b""

    def _headers_finished(self) -> None:
        disposition, params = parse_options_header(self._headers.get("content-disposition", ""))
        if disposition != b"form-data" or b"name" not in params:
            raise UploadError(400, "malformed multipart part: no form-data name")
        self._field_name = params[b"name"].decode("utf-8", "replace")
        if b"filename" in params:
            if self._field_name != self.file_field or self._fh is not None or self.result.path is not None:
                raise UploadError(400, f"send exactly one file, in the {self.file_field!r} field")
            self._is_file = True
            self.result.filename = params[b"filename"].decode("utf-8", "replace")[:255]
            self.result.path = self.directory / f"{uuid.uuid4().hex}.part"
            self._fh = self.result.path.open("xb")
        elif len(self.result.fields) >= self.max_fields:
            raise UploadError(400, "too many form fields")

    def _data(self, data: bytes) -> None:
        if self._is_file:
            assert self._fh is not None
            self.result.size += len(data)
            if self.result.size > self.max_bytes:
                raise UploadError(413, f"the upload is larger than the {self.max_bytes} byte limit")
            self._hash.update(data)
            self._fh.write(data)
        else:
            self._field_value += data
            if len(self._field_value) > self.max_field_bytes:
                raise UploadError(400, f"form field {self._field_name!r} is too long")

    def _part_end(self) -> None:
        if self._is_file:
            assert self._fh is not None
            self._fh.close()
            self._fh = None
            self.result.sha256 = self._hash.hexdigest()
        elif self._field_name is not None:
            self.result.fields[self._field_name] = self._field_value.decode("utf-8", "replace")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


async def receive_upload(
    request: Request,
    directory: Path,
    *,
    max_bytes: int,
    file_field: str = "file",
    max_fields: int = 16,
    max_field_bytes: int = 64 * 1024,
) -> ReceivedUpload:
    """Stream a ``multipart/form-data`` body to ``directory``; raises :class:`UploadError` (and cleans up)."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in params:
        raise UploadError(415, f"send the dataset as multipart/form-data with a {file_field!r} file field")
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_bytes + _FORM_OVERHEAD:
        raise UploadError(413, f"the upload is larger than the {max_bytes} byte limit")
    directory.mkdir(parents=True, exist_ok=True)
    collector = _FormCollector(directory, file_field, max_bytes, max_fields, max_field_bytes)
    parser = MultipartParser(params[b"boundary"], collector.callbacks())
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_bytes + _FORM_OVERHEAD:
                raise UploadError(413, f"the upload is larger than the {max_bytes} byte limit")
            parser.write(chunk)
        parser.finalize()
        if collector.result.path is None:
            raise UploadError(422, f"no file was sent in the {file_field!r} field")
        if collector.result.sha256 == "":
            raise UploadError(400, "the multipart body ended before the file did")
    except MultipartParseError as exc:
        collector.close()
        collector.result.discard()
        raise UploadError(400, f"malformed multipart body: {exc}") from None
    except (UploadError, ClientDisconnect, Exception):
        collector.close()
        collector.result.discard()
        raise
    return collector.result
