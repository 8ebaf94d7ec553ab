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

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath

from models.datasets import ImageSet, ReadOptions, ZipTree, read_folder_tree, read_npz_tree
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

    def read_options(self, image_size: int | None = None) -> ReadOptions:
        """The reader's limits for an upload (stricter than a lab's own folder on disk)."""
        return ReadOptions(
            formats=self.formats,
            image_max_pixels=self.image_max_pixels,
            dataset_max_pixels=self.dataset_max_pixels,
            image_size=image_size,
        )


@dataclass(frozen=True)
class ParsedDataset:
    """A validated upload: its layout (``npz`` | ``imagefolder``) and the ImageSet the reader made of it."""

    format: str
    imageset: ImageSet


def parse_upload(
    path: Path,
    limits: IngestLimits,
    *,
    filename: str | None = None,
    class_names: list[str] | None = None,
    image_size: int | None = None,
) -> ParsedDataset:
    """Validate the uploaded file at ``path`` and return its images; raises :class:`UploadError`."""
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise UploadError(415, "the file is neither a .zip (ImageFolder layout) nor a MedMNIST .npz")
    label = PurePath(filename or "upload").name or "upload"
    name = PurePath(label).stem or "dataset"
    options = limits.read_options(image_size)
    try:
        with zipfile.ZipFile(path) as archive:
            members = check_members(archive, limits)
            tree = ZipTree(archive, members, read=_Budget(limits.max_uncompressed_bytes).read, label=label)
            files = [m for m in members if not m.is_dir()]
            is_npz = bool(files) and all(m.filename.endswith(".npy") for m in files)
            if is_npz or label.lower().endswith(".npz"):
                return ParsedDataset("npz", read_npz_tree(tree, name=name, options=options, class_names=class_names))
            imageset = read_folder_tree(tree, name=name, options=options, class_names=class_names)
            return ParsedDataset("imagefolder", imageset)
    except zipfile.BadZipFile as exc:
        raise UploadError(422, f"the archive is corrupt: {clip(exc)}") from None
    except DatasetTooLargeError as exc:
        raise UploadError(413, str(exc)) from None
    except DatasetError as exc:
        raise UploadError(422, str(exc)) from None


def check_members(archive: zipfile.ZipFile, limits: IngestLimits) -> list[zipfile.ZipInfo]:
    """Refuse unsafe or oversized archives before anything is extracted; returns the members."""
    members = archive.infolist()
    if len(members) > limits.max_members:
        raise UploadError(422, f"the archive has {len(members)} members; at most {limits.max_members} are allowed")
    total = 0
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
    return members


class _Budget:
    """Bytes still allowed to be read out of the archive, whatever its headers claim."""

    def __init__(self, limit: int) -> None:
        self.left = limit

    def read(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
        chunks: list[bytes] = []
        size = 0
        with archive.open(info) as fh:
            while chunk := fh.read(_READ_CHUNK):
                size += len(chunk)
                self.left -= len(chunk)
                if size > info.file_size:
                    raise UploadError(422, f"member {clip(info.filename)!r} is larger than its header says")
                if self.left < 0:
                    raise UploadError(413, "the archive expands to more bytes than allowed (a zip bomb?)")
                chunks.append(chunk)
        return b"".join(chunks)
