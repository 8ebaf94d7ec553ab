"""What a read accepts: image formats, pixel caps, an optional resize. One dataclass for every entrance.

The reading rules are the same everywhere; only these limits differ by who is asking (an upload from the
network gets the service's settings, a lab's own folder on disk gets the generous defaults).
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "BMP", "TIFF")
"""Image formats decoded by default (Pillow format names; see :mod:`models.datasets.decode` for plug-ins)."""


@dataclass(frozen=True)
class ReadOptions:
    formats: tuple[str, ...] = DEFAULT_FORMATS
    """Allow-list of formats; a file in any other format is refused, whatever its name says."""
    image_max_pixels: int = 1 << 26
    """Largest image (width x height), checked from the header before decoding."""
    dataset_max_pixels: int | None = None
    """Most pixel values (N x H x W x C over all splits); over it the read raises DatasetTooLargeError."""
    image_size: int | None = None
    """Resize every decoded image to this square (image folders only); ``None`` requires one common size."""
