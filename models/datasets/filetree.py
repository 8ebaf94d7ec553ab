"""A read-only tree of files, from a directory on disk or a zip archive, so layout logic is written once.

Readers see relative POSIX paths, ask for a file's bytes, and name files in messages through ``where``;
they never learn whether the bytes came from disk or from an (already safety-checked) upload.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol

import numpy as np

from models.datasets.npy import read_npy_stream
from models.errors import DatasetError, clip

JUNK_NAMES = frozenset({"Thumbs.db", "desktop.ini"})
"""Files operating systems drop into folders; skipped like hidden files and ``__MACOSX/``."""
MAX_DEPTH = 4
"""Deepest folder an ImageFolder layout has (``wrapper/split/class/``); deeper folders are not walked."""
TABLE_MAX_DEPTH = 16
"""Deepest folder walked when a labels.csv names the files (DICOM exports nest patient/study/series/...)."""


def is_junk(path: PurePosixPath) -> bool:
    """Hidden files and folders (``.DS_Store``, ``._x``), ``__MACOSX/`` and OS thumbnails are not data."""
    return any(part.startswith(".") or part == "__MACOSX" for part in path.parts) or path.name in JUNK_NAMES


class FileTree(Protocol):
    label: str
    """How messages name the whole tree (a path on disk, an upload's file name)."""

    def files(self) -> list[PurePosixPath]:
        """Every regular file, as a relative path, sorted."""
        ...

    def dirs(self) -> list[PurePosixPath]:
        """Every folder known (including empty ones), as a relative path, sorted."""
        ...

    def read(self, path: PurePosixPath) -> bytes: ...

    def read_array(self, path: PurePosixPath) -> np.ndarray:
        """An ``.npy`` file's array, read from its stream into a buffer of its own (no copy of its bytes)."""
        ...

    def where(self, path: PurePosixPath) -> str:
        """The file or folder as a message names it."""
        ...


class DirTree:
    """A directory on disk (the lab's own data: symlinks followed, junk folders and anything deeper than
    ``max_depth`` not walked; files that deep already break the ImageFolder layout, and the reader says so)."""

    def __init__(self, root: str | Path, max_depth: int = MAX_DEPTH) -> None:
        self.root = Path(root)
        self.label = str(self.root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: no such directory")
        self._files: list[PurePosixPath] = []
        self._dirs: list[PurePosixPath] = []
        for current, subdirs, names in os.walk(self.root, followlinks=True):
            rel = PurePosixPath(Path(current).relative_to(self.root).as_posix())
            depth = 0 if rel == PurePosixPath(".") else len(rel.parts)
            if depth:
                self._dirs.append(rel)
            subdirs[:] = [] if depth >= max_depth else sorted(d for d in subdirs if not is_junk(PurePosixPath(d)))
            self._files += [rel / name if depth else PurePosixPath(name) for name in names
                            if os.path.isfile(os.path.join(current, name))]  # fmt: skip
        self._files.sort()
        self._dirs.sort()

    def files(self) -> list[PurePosixPath]:
        return list(self._files)

    def dirs(self) -> list[PurePosixPath]:
        return list(self._dirs)

    def read(self, path: PurePosixPath) -> bytes:
        return (self.root / path).read_bytes()

    def read_array(self, path: PurePosixPath) -> np.ndarray:
        with (self.root / path).open("rb") as handle:
            return read_npy_stream(handle, os.fstat(handle.fileno()).st_size)

    def where(self, path: PurePosixPath) -> str:
        return str(self.root / path)


ZipRead = Callable[[zipfile.ZipFile, zipfile.ZipInfo], bytes]
ZipOpen = Callable[[zipfile.ZipFile, zipfile.ZipInfo], AbstractContextManager[BinaryIO]]
"""Open a member as a stream (an upload's counts its bytes against the archive's budget)."""


class ZipTree:
    """The members of a zip archive; ``read`` replaces ``ZipFile.read`` (an upload reads through a byte budget),
    ``open`` replaces ``ZipFile.open`` for arrays read as streams, and ``charge`` is told an array's bytes before
    its buffer is allocated (an upload's decode budget).

    Member safety (traversal, links, sizes) is the caller's job before building the tree: this class only
    maps names, so it trusts the ``members`` it is given.
    """

    def __init__(
        self,
        archive: zipfile.ZipFile,
        members: list[zipfile.ZipInfo] | None = None,
        *,
        read: ZipRead | None = None,
        open: ZipOpen | None = None,  # noqa: A002 - the ZipFile method it replaces
        charge: Callable[[str, int], None] | None = None,
        label: str = "",
    ) -> None:
        self.archive = archive
        self.label = clip(label or archive.filename or "archive")
        self._read = read or (lambda zf, info: zf.read(info))
        self._open = open or (lambda zf, info: zf.open(info))
        self._charge = charge
        self._files: dict[PurePosixPath, zipfile.ZipInfo] = {}
        self._dirs: dict[PurePosixPath, str] = {}
        for info in archive.infolist() if members is None else members:
            path = PurePosixPath(info.filename)
            if info.is_dir():
                self._dirs[path] = info.filename
            elif path in self._files:
                raise DatasetError(f"{self.where(path)}: the archive holds this member twice")
            else:
                self._files[path] = info

    def files(self) -> list[PurePosixPath]:
        return sorted(self._files)

    def dirs(self) -> list[PurePosixPath]:
        return sorted(self._dirs)

    def read(self, path: PurePosixPath) -> bytes:
        try:
            return self._read(self.archive, self._files[path])
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise DatasetError(f"{self.where(path)}: the archive is corrupt ({clip(exc)})") from None

    def read_array(self, path: PurePosixPath) -> np.ndarray:
        info = self._files[path]
        charge = None if self._charge is None else (lambda nbytes: self._charge(info.filename, nbytes))
        try:
            with self._open(self.archive, info) as stream:
                return read_npy_stream(stream, info.file_size, charge)
        except (zipfile.BadZipFile, zlib.error) as exc:
            raise DatasetError(f"{self.where(path)}: the archive is corrupt ({clip(exc)})") from None

    def where(self, path: PurePosixPath) -> str:
        info = self._files.get(path)
        name = info.filename if info is not None else self._dirs.get(path, str(path))
        return f"{self.label}/{clip(name.rstrip('/'))}"
