"""One image file's bytes -> uint8 (H, W, 1|3), under a format allow-list and a pixel cap.

Decoders for formats Pillow cannot read plug in here and nowhere else (DICOM does, in
:mod:`models.datasets.dicom`): write ``decode(data, where, options) -> uint8 (H, W, 1|3)`` or a
:class:`Decoded` (check ``options.image_max_pixels`` before decoding the pixel data, raise DatasetError naming
``where``), call ``register_decoder("DICOM", (".dcm",), decode, sniff=is_dicom)`` at import of the module that
holds it, and add ``"DICOM"`` to the formats an entrance allows (``Settings.image_formats`` for uploads). A file
goes to a plug-in when its suffix is registered or its content passes ``sniff``; every reader (disk folder, zip
upload, labels.csv) then decodes such files, resizes and checks them exactly as it does PNGs.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from models.datasets.options import ReadOptions
from models.errors import DatasetError, clip


@dataclass(frozen=True)
class Decoded:
    """One decoded file: the pixels and, in memory only, what a layout may need to know about it.

    ``patient_id`` and ``instance_uid`` (a DICOM file's PatientID and SOPInstanceUID) group and find images;
    they are never stored or shown. ``rule`` names how the pixels became an image (the dataset record counts
    images per rule): ``image`` (Pillow), ``ct_window``, ``voi`` (the file's own), ``percentile``, ``color``.
    """

    pixels: np.ndarray
    """uint8 (H, W, 1|3), not resized."""
    rule: str = "image"
    patient_id: str | None = None
    instance_uid: str | None = None
    inverted: bool = False
    """MONOCHROME1 (higher values darker) was inverted."""
    multiframe: bool = False


class DecodeLog:
    """What the rules did to a read's images: the choices and counts the dataset record keeps."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def add(self, decoded: Decoded, *, cropped: bool = False) -> None:
        self.counts[decoded.rule] += 1
        self.counts["inverted"] += decoded.inverted
        self.counts["multiframe"] += decoded.multiframe
        self.counts["cropped"] += cropped

    def record(self, options: ReadOptions, image_size: int | None) -> dict[str, Any] | None:
        """``None`` when nothing but plain images was read (no DICOM, no ROI crop)."""
        if set(+self.counts) <= {"image"}:
            return None
        images = {key: int(n) for key, n in sorted(self.counts.items()) if n}
        return {**options.pixels.describe(), "image_size": image_size, "images": images}


Decoder = Callable[[bytes, str, ReadOptions], "np.ndarray | Decoded"]
Sniff = Callable[[bytes], bool]
_PLUGINS: dict[str, tuple[str, Decoder]] = {}
"""File suffix (lower case, with the dot) -> (format name, decoder) for formats Pillow does not read."""
_SNIFFERS: list[tuple[str, Sniff, Decoder]] = []
"""(format name, content test, decoder): files of any name whose bytes pass the test."""


def register_decoder(format_name: str, suffixes: tuple[str, ...], decoder: Decoder, *, sniff: Sniff | None = None
                     ) -> None:  # fmt: skip
    """Decode files ending in ``suffixes`` (or, with ``sniff``, whose bytes pass it) with ``decoder`` whenever
    ``format_name`` is an allowed format."""
    for suffix in suffixes:
        _PLUGINS[suffix.lower()] = (format_name.upper(), decoder)
    if sniff is not None:
        _SNIFFERS[:] = [entry for entry in _SNIFFERS if entry[0] != format_name.upper()]
        _SNIFFERS.append((format_name.upper(), sniff, decoder))


def _plugin(data: bytes, suffix: str, options: ReadOptions) -> Decoder | None:
    plugin = _PLUGINS.get(suffix.lower())
    if plugin is not None and plugin[0] in options.formats:
        return plugin[1]
    for name, sniff, decoder in _SNIFFERS:
        if name in options.formats and sniff(data):
            return decoder
    return None


def decode_file(data: bytes, where: str, options: ReadOptions, *, suffix: str = "") -> Decoded:
    """Fully decode one file (not resized). ``suffix`` (the file's, e.g. ``".dcm"``) or the content picks a
    plug-in decoder; other files go to Pillow, which identifies them by content, never by name."""
    decoder = _plugin(data, suffix, options)
    if decoder is None:
        return Decoded(_decode_with_pillow(data, where, options))
    decoded = decoder(data, where, options)
    return decoded if isinstance(decoded, Decoded) else Decoded(decoded)


def resize(array: np.ndarray, size: int | None) -> np.ndarray:
    """uint8 (H, W, C) -> (size, size, C) with Lanczos; unchanged when ``size`` is None or already that size."""
    if size is None or array.shape[:2] == (size, size):
        return array
    mode = "L" if array.shape[-1] == 1 else "RGB"
    resized = Image.fromarray(array[..., 0] if mode == "L" else array, mode=mode).resize(
        (size, size), Image.Resampling.LANCZOS
    )
    return np.asarray(resized, dtype=np.uint8).reshape(size, size, -1)


def decode_image(data: bytes, where: str, options: ReadOptions, *, suffix: str = "") -> np.ndarray:
    """Fully decode one image to uint8 (H, W, 1|3), resized to ``options.image_size`` when that is set."""
    return resize(decode_file(data, where, options, suffix=suffix).pixels, options.image_size)


def _decode_with_pillow(data: bytes, where: str, options: ReadOptions) -> np.ndarray:
    plugins = {name for name, _ in _PLUGINS.values()} | {name for name, _, _ in _SNIFFERS}
    pillow_formats = [f for f in options.formats if f not in plugins]
    try:
        with Image.open(io.BytesIO(data), formats=pillow_formats) as image:
            width, height = image.size
            if width * height > options.image_max_pixels:
                raise DatasetError(f"{where}: {width}x{height} is over the {options.image_max_pixels} pixel limit")
            image.load()
            return _to_array(image, where)
    except DatasetError:
        raise
    except UnidentifiedImageError:
        allowed = ", ".join(options.formats)
        raise DatasetError(f"{where}: not an image in an accepted format ({allowed})") from None
    except Image.DecompressionBombError:
        raise DatasetError(f"{where}: over the pixel limit (decompression bomb)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DatasetError(f"{where}: could not be decoded (truncated or corrupt image: {clip(exc)})") from None


def _to_array(image: Image.Image, where: str) -> np.ndarray:
    """Gray sources stay one channel, colour ones become RGB (alpha dropped); 16-bit gray is rescaled."""
    mode = image.mode
    if mode in ("1", "L", "LA", "P") and not (mode == "P" and _palette_has_color(image)):
        return np.asarray(image.convert("L"), dtype=np.uint8)[..., None]
    if mode.startswith("I"):  # 16/32-bit gray (common for medical PNGs): 0..65535 -> 0..255, not clipped
        wide = np.asarray(image, dtype=np.int64).clip(0, 65535)
        return ((wide * 255 + 32767) // 65535).astype(np.uint8)[..., None]
    if mode == "F":
        raise DatasetError(f"{where}: a floating-point image; convert it to 8 or 16 bit")
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _palette_has_color(image: Image.Image) -> bool:
    rgb = np.asarray(image.convert("RGB"))
    return bool((rgb[..., 0] != rgb[..., 1]).any() or (rgb[..., 1] != rgb[..., 2]).any())
