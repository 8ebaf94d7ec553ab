"""What a read accepts: image formats, pixel caps, an optional resize, and the rules that turn DICOM pixel data
into images (:class:`PixelRules`). One dataclass for every entrance.

The reading rules are the same everywhere; only these limits differ by who is asking (an upload from the
network gets the service's settings, a lab's own folder on disk gets the generous defaults). The pixel rules
are the lab's choices (window, multi-frame rule, ROI use); they become part of the dataset record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.errors import DatasetError, clip

DEFAULT_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "BMP", "TIFF", "DICOM")
"""Image formats decoded by default (Pillow format names, and DICOM through :mod:`models.datasets.dicom`)."""

WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "abdomen": (400.0, 40.0),
    "liver": (150.0, 30.0),
    "mediastinum": (350.0, 50.0),
    "lung": (1500.0, -600.0),
    "bone": (1800.0, 400.0),
    "brain": (80.0, 40.0),
}
"""CT windows by name: (width, level) in Hounsfield units."""
WINDOWS: tuple[str, ...] = (*WINDOW_PRESETS, "file", "custom")
"""``window`` values: a preset, ``file`` (the file's own VOI LUT or window), ``custom`` (width and level)."""
FRAME_RULES: tuple[str, ...] = ("middle", "first", "mip")
"""Which frame of a multi-frame file becomes the image: the middle one (frame ``n // 2``), the first, or the
maximum-intensity projection over all frames."""
ROI_MODES: tuple[str, ...] = ("crop", "ignore")
ROI_IMAGE_SIZE = 64
"""Side of the square an ROI crop is resized to when the read sets no ``image_size``."""
MIP_MAX_FACTOR = 64
"""A maximum-intensity projection decodes at most this many times ``image_max_pixels`` pixel values."""


@dataclass(frozen=True)
class PixelRules:
    """How DICOM pixel data become 8-bit images, and whether ROIs are cropped (see ``docs/SERVICE.md``)."""

    window: str = "abdomen"
    """CT only: a :data:`WINDOW_PRESETS` name, ``custom`` (``window_width`` / ``window_level``) or ``file``."""
    window_width: float | None = None
    window_level: float | None = None
    frames: str = "middle"
    """Multi-frame rule, one of :data:`FRAME_RULES`."""
    percentiles: tuple[float, float] = (1.0, 99.0)
    """Modalities other than CT (and ``file`` without a VOI in the file): these percentiles of the frame map
    to 0 and 255."""
    roi: str = "crop"
    """``crop``: a labels.csv ROI (box or mask) is cropped with ``roi_margin``; ``ignore``: whole images."""
    roi_margin: float = 0.2
    """Context around an ROI: the crop is a square of side ``(1 + 2 * roi_margin)`` times the box's longer side."""

    def __post_init__(self) -> None:
        if self.window not in WINDOWS:
            raise DatasetError(f"window must be one of {', '.join(WINDOWS)}; got {clip(self.window, 40)!r}")
        given = (self.window_width is not None, self.window_level is not None)
        if self.window == "custom":
            if not all(given):
                raise DatasetError("window custom needs both window_width and window_level")
            if not 1 <= float(self.window_width) <= 100_000 or not -100_000 <= float(self.window_level) <= 100_000:
                raise DatasetError("window_width must be 1..100000 HU and window_level -100000..100000 HU")
        elif any(given):
            raise DatasetError("window_width and window_level go with window=custom (or leave window unset)")
        if self.frames not in FRAME_RULES:
            raise DatasetError(f"frames must be one of {', '.join(FRAME_RULES)}; got {clip(self.frames, 40)!r}")
        low, high = self.percentiles
        if not 0 <= low < high <= 100:
            raise DatasetError(f"percentiles must satisfy 0 <= low < high <= 100; got {self.percentiles}")
        if self.roi not in ROI_MODES:
            raise DatasetError(f"roi must be one of {', '.join(ROI_MODES)}; got {clip(self.roi, 40)!r}")
        if not 0 <= self.roi_margin <= 2:
            raise DatasetError(f"roi_margin must be between 0 and 2; got {self.roi_margin}")

    @classmethod
    def from_fields(
        cls,
        window: str | None = None,
        window_width: float | None = None,
        window_level: float | None = None,
        frames: str | None = None,
        roi: str | None = None,
        roi_margin: float | None = None,
    ) -> PixelRules:
        """The rules from optional form or command-line values; a width and level alone mean ``custom``."""
        if not window and (window_width is not None or window_level is not None):
            window = "custom"
        values: dict[str, Any] = {"window": window, "window_width": window_width, "window_level": window_level,
                                  "frames": frames, "roi": roi, "roi_margin": roi_margin}  # fmt: skip
        return cls(**{key: value for key, value in values.items() if value is not None})

    @property
    def width_level(self) -> tuple[float, float] | None:
        """The CT window as (width, level), or ``None`` for ``file``."""
        if self.window == "custom":
            return float(self.window_width), float(self.window_level)  # type: ignore[arg-type]
        return WINDOW_PRESETS.get(self.window)

    def describe(self) -> dict[str, Any]:
        """The choices, as the dataset record and every job's report keep them."""
        window: dict[str, Any] = {"name": self.window}
        if self.width_level is not None:
            window["width"], window["level"] = self.width_level
        return {
            "window": window,
            "frames": self.frames,
            "percentiles": list(self.percentiles),
            "roi": {"mode": self.roi, "margin": self.roi_margin},
        }


@dataclass(frozen=True)
class ReadOptions:
    formats: tuple[str, ...] = DEFAULT_FORMATS
    """Allow-list of formats; a file in any other format is refused, whatever its name says."""
    image_max_pixels: int = 1 << 26
    """Largest image (width x height), checked from the header before decoding."""
    dataset_max_pixels: int | None = None
    """Most pixel values (N x H x W x C over all splits); over it the read raises DatasetTooLargeError."""
    image_size: int | None = None
    """Resize every decoded image (or ROI crop) to this square; ``None`` requires one common size (ROI crops:
    :data:`ROI_IMAGE_SIZE`)."""
    pixels: PixelRules = field(default_factory=PixelRules)
    """DICOM windowing, normalisation, multi-frame and ROI rules."""
    max_classes: int = 10_000
    """Most classes a dataset may have: a label at or above it is refused before any per-class list is built."""


_RULE_WORDS = {
    "ct_window": "CT-windowed",
    "voi": "through the file's own VOI",
    "percentile": "percentile-normalised",
    "color": "colour",
    "image": "plain images",
    "inverted": "MONOCHROME1 inverted",
    "multiframe": "multi-frame",
    "cropped": "ROI-cropped",
}


def describe_decode(decode: dict[str, Any] | None) -> str:
    """A dataset's decode record (:meth:`PixelRules.describe` plus counts) as one line for reports."""
    if not decode:
        return "pixels as stored (no DICOM, no ROI crop)"
    window = decode.get("window") or {}
    if "width" in window:
        shown = f"CT window {window.get('name')} (W {window['width']:g}, L {window['level']:g} HU)"
    else:
        shown = "the file's own VOI window / LUT"
    low, high = decode.get("percentiles") or (1, 99)
    roi = decode.get("roi") or {}
    parts = [
        shown,
        f"other modalities: percentiles {low:g}-{high:g}",
        f"multi-frame: {decode.get('frames')} frame" if decode.get("frames") != "mip" else "multi-frame: MIP",
        f"ROI: {roi.get('mode')}" + (f" (margin {roi.get('margin', 0):g})" if roi.get("mode") == "crop" else ""),
    ]
    if decode.get("image_size"):
        parts.append(f"resized to {decode['image_size']} px")
    counts = ", ".join(f"{n} {_RULE_WORDS.get(key, key)}" for key, n in (decode.get("images") or {}).items())
    return "; ".join(parts) + (f"; images: {counts}" if counts else "")
