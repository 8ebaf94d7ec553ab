"""One image file's bytes -> uint8 (H, W, 1|3), under a format allow-list and a pixel cap.

Decoders for formats Pillow cannot read (DICOM next) plug in here and nowhere else: write
``decode(data, where, options) -> uint8 (H, W, 1|3)`` (check ``options.image_max_pixels`` before decoding the
pixel data, raise DatasetError naming ``where``), call ``register_decoder("DICOM", (".dcm",), decode)`` at import
of the module that holds it, and add ``"DICOM"`` to the formats an entrance allows (``Settings.image_formats``
for uploads). Every reader (disk folder, zip upload) then decodes such files, resizes and checks them exactly
as it does PNGs.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, UnidentifiedImageError

from models.datasets.options import ReadOptions
from models.errors import DatasetError, clip

Decoder = Callable[[bytes, str, ReadOptions], np.ndarray]
_PLUGINS: dict[str, tuple[str, Decoder]] = {}
"""File suffix (lower case, with the dot) -> (format name, decoder) for formats Pillow does not read."""


def register_decoder(format_name: str, suffixes: tuple[str, ...], decoder: Decoder) -> None:
    """Decode files ending in ``suffixes`` with ``decoder`` whenever ``format_name`` is an allowed format."""
    for suffix in suffixes:
        _PLUGINS[suffix.lower()] = (format_name.upper(), decoder)


def decode_image(data: bytes, where: str, options: ReadOptions, *, suffix: str = "") -> np.ndarray:
    """Fully decode one image to uint8 (H, W, 1|3), resized to ``options.image_size`` when that is set.

    ``suffix`` (the file's, e.g. ``".dcm"``) picks a plug-in decoder; other files go to Pillow, which
    identifies them by content, never by name.
    """
    plugin = _PLUGINS.get(suffix.lower())
    if plugin is not None and plugin[0] in options.formats:
        array = plugin[1](data, where, options)
    else:
        array = _decode_with_pillow(data, where, options)
    size = options.image_size
    if size is not None and array.shape[:2] != (size, size):
        mode = "L" if array.shape[-1] == 1 else "RGB"
        resized = Image.fromarray(array[..., 0] if mode == "L" else array, mode=mode).resize(
            (size, size), Image.Resampling.LANCZOS
        )
        array = np.asarray(resized, dtype=np.uint8).reshape(size, size, -1)
    return array


def _decode_with_pillow(data: bytes, where: str, options: ReadOptions) -> np.ndarray:
    pillow_formats = [f for f in options.formats if f not in {name for name, _ in _PLUGINS.values()}]
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
