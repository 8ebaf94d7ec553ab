"""Read one ``.npy`` array from a stream into a buffer of its own: the reader's only way to load an array.

The bytes are copied from the stream a chunk at a time into the array (no copy of the member's bytes is kept
beside it), and nothing is allocated before the header has accounted for exactly the bytes that follow it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import BinaryIO

import numpy as np

from models.errors import clip

NPY_READ_CHUNK = 1 << 20
"""Bytes copied from a member's stream into the array per read."""


def read_npy_stream(
    stream: BinaryIO, size: int, charge: Callable[[int], None] | None = None, chunk: int = NPY_READ_CHUNK
) -> np.ndarray:
    """One ``.npy`` array read from ``stream`` (``size`` bytes in all) into a buffer of its own, never unpickled:
    the header's shape and dtype must account for exactly the bytes that follow it (a header that declares
    10¹² bytes in a 1 KB member is refused before anything is allocated); ``charge`` is told the array's bytes
    before its buffer is allocated (an upload's memory budget)."""
    start = stream.tell()
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
    else:
        raise ValueError(f"unsupported .npy format version {version}")
    if dtype.hasobject:
        raise ValueError("object arrays are not allowed")
    header = stream.tell() - start
    declared = math.prod(int(n) for n in shape) * dtype.itemsize
    held = size - header
    if declared != held:
        raise ValueError(f"its header declares {clip(shape, 60)} {dtype} ({declared} bytes) but it holds {held}")
    if charge is not None:
        charge(max(declared, size))
    array = np.empty(shape, dtype=dtype, order="F" if fortran else "C")
    view = memoryview(array.reshape(-1, order="A").view(np.uint8)) if declared else memoryview(b"")
    filled = 0
    while filled < declared:
        got = stream.readinto(view[filled : filled + chunk])
        if not got:
            raise EOFError(f"the member ended after {filled} of its {declared} array bytes")
        filled += got
    if stream.read(1):
        raise ValueError("the member holds more bytes than its header declares")
    return array
