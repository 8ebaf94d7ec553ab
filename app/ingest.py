"""Receive an uploaded dataset file safely and hand it to the one dataset reader (:mod:`models.datasets`).

This module is transport only. It refuses unsafe or oversized archives before any byte is read (no ``..``,
no absolute path, no symlink or other special file, no encryption, member count, total uncompressed size,
per-member compression ratio), then reads members through a byte budget rather than trusting their headers.
Which layout the file has, how images decode, which checks apply and how missing splits are carved is the
reader's business, identical to ``genmix run --dataset`` and the workers. Every failure raises
:class:`UploadError` with an HTTP status: 413 for anything over a size limit, 415 for a file that is no
archive at all, 422 for an invalid or unusable dataset.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import math
import re
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath
from typing import IO

import anyio
import numpy as np
from PIL import Image

from models.datasets import ImageSet, PixelRules, ReadOptions, ZipTree, read_image_tree, read_npz_tree
from models.errors import DatasetError, DatasetTooLargeError, clip

_READ_CHUNK = 1 << 16


class UploadError(Exception):
    """An upload was refused: ``status`` is the HTTP status, ``detail`` says why."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class IngestLimits:
    max_members: int
    max_uncompressed_bytes: int
    max_ratio: float
    ratio_min_bytes: int
    image_max_pixels: int
    dataset_max_pixels: int
    formats: tuple[str, ...]
    max_classes: int = 1000
    max_decoded_bytes: int = 1 << 30
    """Memory budget of one upload's pixels (see :class:`DecodeBudget`)."""

    def read_options(self, image_size: int | None = None, pixels: PixelRules | None = None) -> ReadOptions:
        """The reader's limits for an upload (stricter than a lab's own folder on disk), and the lab's pixel
        choices (DICOM window, multi-frame rule, ROI use)."""
        return ReadOptions(
            formats=self.formats,
            image_max_pixels=self.image_max_pixels,
            dataset_max_pixels=min(self.dataset_max_pixels, self.max_decoded_bytes),
            image_size=image_size,
            max_classes=self.max_classes,
            pixels=pixels or PixelRules(),
        )


@dataclass(frozen=True)
class ParsedDataset:
    """A validated upload: its layout (``npz`` | ``imagefolder`` | ``csv``) and the ImageSet the reader made of it."""

    format: str
    imageset: ImageSet


def parse_upload(
    path: Path,
    limits: IngestLimits,
    *,
    filename: str | None = None,
    class_names: list[str] | None = None,
    image_size: int | None = None,
    pixels: PixelRules | None = None,
) -> ParsedDataset:
    """Validate the uploaded file at ``path`` and return its images; raises :class:`UploadError`."""
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise UploadError(
            415, "the file is neither a .zip (ImageFolder layout, or files with a labels.csv) nor a MedMNIST .npz"
        )
    label = PurePath(filename or "upload").name or "upload"
    name = PurePath(label).stem or "dataset"
    options = limits.read_options(image_size, pixels)
    try:
        with zipfile.ZipFile(path) as archive:
            members = check_members(archive, limits)
            budget = _Budget(limits.max_uncompressed_bytes, DecodeBudget(limits.max_decoded_bytes, limits.formats))
            tree = ZipTree(archive, members, read=budget.read, open=budget.open, charge=budget.charge, label=label)
            files = [m for m in members if not m.is_dir()]
            is_npz = bool(files) and all(m.filename.endswith(".npy") for m in files)
            if is_npz or label.lower().endswith(".npz"):
                return ParsedDataset("npz", read_npz_tree(tree, name=name, options=options, class_names=class_names))
            layout, imageset = read_image_tree(tree, name=name, options=options, class_names=class_names)
            return ParsedDataset(layout, imageset)
    except zipfile.BadZipFile as exc:
        raise UploadError(422, f"the archive is corrupt: {clip(exc)}") from None
    except DatasetTooLargeError as exc:
        raise UploadError(413, str(exc)) from None
    except DatasetError as exc:
        raise UploadError(422, str(exc)) from None
    except MemoryError:
        raise UploadError(413, "the dataset does not fit in the memory this service gives one upload") from None


def check_members(archive: zipfile.ZipFile, limits: IngestLimits) -> list[zipfile.ZipInfo]:
    """Refuse unsafe or oversized archives before anything is extracted; returns the members."""
    members = archive.infolist()
    if len(members) > limits.max_members:
        raise UploadError(422, f"the archive has {len(members)} members; at most {limits.max_members} are allowed")
    total = 0
    compressed = 0
    for info in members:
        name = info.filename
        shown = clip(name)
        if "\x00" in name or "\\" in name:
            raise UploadError(422, f"unsafe member name {shown!r}: NUL bytes and backslashes are not allowed")
        if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
            raise UploadError(422, f"unsafe member {shown!r}: absolute paths are not allowed")
        if ".." in PurePosixPath(name).parts:
            raise UploadError(422, f"unsafe member {shown!r}: path traversal ('..') is not allowed")
        file_type = (info.external_attr >> 16) & 0o170000
        if file_type == 0o120000:
            raise UploadError(422, f"unsafe member {shown!r}: symbolic links are not allowed")
        if file_type not in (0, 0o100000, 0o040000):
            raise UploadError(422, f"unsafe member {shown!r}: only regular files and folders are allowed")
        if info.flag_bits & 0x1:
            raise UploadError(422, f"member {shown!r} is encrypted; encrypted archives are not supported")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise UploadError(422, f"member {shown!r} uses an unsupported compression method")
        total += info.file_size
        compressed += info.compress_size
        if total > limits.max_uncompressed_bytes:
            raise UploadError(
                413, f"the archive expands to more than {limits.max_uncompressed_bytes} bytes (a zip bomb?)"
            )
        if info.file_size > limits.ratio_min_bytes:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > limits.max_ratio:
                raise UploadError(
                    422,
                    f"member {shown!r} expands {ratio:.0f}:1 (limit {limits.max_ratio:.0f}:1): a zip bomb?",
                )
    ratio = total / max(compressed, 1)
    if total > limits.ratio_min_bytes and ratio > limits.max_ratio:  # many small members, each under the floor
        raise UploadError(
            422, f"the archive expands {ratio:.0f}:1 overall (limit {limits.max_ratio:.0f}:1): a zip bomb?"
        )
    return members


class DecodeBudget:
    """The memory one upload's pixels may take, charged from each member's header *before* the reader decodes it.

    A ``.npy`` member is charged the bytes its header declares (the reader also refuses a header that declares
    more than the member holds); an image is charged width × height × channels from its header (Pillow reads
    only the header here). Formats Pillow cannot identify (a DICOM plug-in) are counted by the reader after
    each decode (``dataset_max_pixels``, at most ``image_max_pixels`` per image). Past the budget: 413.
    """

    def __init__(self, limit: int, formats: tuple[str, ...]) -> None:
        self.limit = limit
        self.formats = [f for f in formats if f in Image.registered_extensions().values()]
        self.used = 0

    def charge_member(self, name: str, data: bytes) -> None:
        self.charge(_declared_bytes(name, data, self.formats), name)

    def charge(self, nbytes: int, name: str) -> None:
        self.used += nbytes
        if self.used > self.limit:
            raise UploadError(
                413,
                f"member {clip(name)!r} takes the upload past its {self.limit} byte memory budget for decoded "
                "pixels (GENMIX_UPLOAD_MAX_DECODED_BYTES)",
            )


_BANDS = {"1": 1, "L": 1, "LA": 1, "I": 1, "I;16": 1, "I;16B": 1, "I;16L": 1, "I;16N": 1, "F": 1}


def _declared_bytes(name: str, data: bytes, formats: list[str]) -> int:
    """Decoded bytes a member's header declares (0 when it is neither an ``.npy`` nor an image Pillow knows)."""
    if name.endswith(".npy"):
        stream = io.BytesIO(data)
        try:
            version = np.lib.format.read_magic(stream)
            header = np.lib.format.read_array_header_2_0 if version == (2, 0) else np.lib.format.read_array_header_1_0
            shape, _, dtype = header(stream)
        except (ValueError, OSError, EOFError):
            return len(data)  # the reader says what is wrong with it
        return max(math.prod(int(n) for n in shape) * dtype.itemsize, len(data))
    try:
        with Image.open(io.BytesIO(data), formats=formats or None) as image:
            width, height = image.size
            return width * height * _BANDS.get(image.mode, 3)
    except Exception:  # not an image Pillow identifies: the reader decides (and counts it after decoding)
        return 0


@asynccontextmanager
async def decode_slot(limiter: anyio.CapacityLimiter) -> AsyncIterator[None]:
    """Wait for one of the process's decode slots (``GENMIX_UPLOAD_MAX_CONCURRENT``); uploads beyond them wait
    with their file on disk, holding no pixels."""
    async with limiter:
        yield


_LIBC = ctypes.util.find_library("c")
_malloc_trim = getattr(ctypes.CDLL(_LIBC), "malloc_trim", None) if _LIBC else None


def release_memory() -> None:
    """Hand the heap's free pages back to the OS after a decode (glibc keeps freed 16 MB images otherwise)."""
    if _malloc_trim is not None:
        _malloc_trim(0)


class _Budget:
    """Bytes still allowed to be read out of the archive, whatever its headers claim, and the decode budget.

    ``read`` returns a (small) member's bytes; ``open`` streams a member (an ``.npy`` array is read from it into
    its own buffer, so a large array is never held twice), counting the same budget as it goes."""

    def __init__(self, limit: int, decode: DecodeBudget | None = None) -> None:
        self.left = limit
        self.decode = decode

    def open(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> _BudgetedStream:
        return _BudgetedStream(self, archive.open(info), info)

    def charge(self, name: str, nbytes: int) -> None:
        """An array member's decoded bytes, from its header, before its buffer is allocated."""
        if self.decode is not None:
            self.decode.charge(nbytes, name)

    def count(self, info: zipfile.ZipInfo, size: int, got: int) -> None:
        self.left -= got
        if size > info.file_size:
            raise UploadError(422, f"member {clip(info.filename)!r} is larger than its header says")
        if self.left < 0:
            raise UploadError(413, "the archive expands to more bytes than allowed (a zip bomb?)")

    def read(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
        chunks: list[bytes] = []
        size = 0
        with archive.open(info) as fh:
            while chunk := fh.read(_READ_CHUNK):
                size += len(chunk)
                self.count(info, size, len(chunk))
                chunks.append(chunk)
        data = b"".join(chunks)
        if self.decode is not None:
            self.decode.charge_member(info.filename, data)
        return data


class _BudgetedStream(io.RawIOBase):
    """A member's stream whose every byte counts against the archive's read budget (and its header's size)."""

    def __init__(self, budget: _Budget, stream: IO[bytes], info: zipfile.ZipInfo) -> None:
        super().__init__()
        self._budget, self._stream, self._info = budget, stream, info
        self._size = 0

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._size

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        got = self._stream.readinto(buffer)
        self._size += got
        self._budget.count(self._info, self._size, got)
        return got

    def close(self) -> None:
        self._stream.close()
        super().close()
