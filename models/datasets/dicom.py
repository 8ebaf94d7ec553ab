"""DICOM files -> 8-bit images, read by pydicom (and the decoder wheels it uses for compressed transfer syntaxes).

The rules (:class:`~models.datasets.options.PixelRules`), in order:

1. Only real DICOM files: the 128-byte preamble and ``DICM`` (never ``force=True``), with pixel data, a transfer
   syntax that has an installed decoder, and the tags needed to decode (Rows, Columns, ...).
2. One frame: a multi-frame file gives its middle frame (``n // 2``), its first, or the maximum-intensity
   projection (``mip``) of all frames, decoded one at a time (capped at :data:`MIP_MAX_FACTOR` x the pixel cap).
3. Modality transform: Rescale Slope / Intercept (or a Modality LUT), so CT values are Hounsfield units; an
   enhanced (functional-group) file's Pixel Value Transformation is used when the top level has none.
4. Gray levels: CT through the chosen window (a preset or custom width / level, DICOM's linear window
   function); ``window=file`` uses the file's own Window Center / Width (first pair, its VOI LUT Function) or
   VOI LUT Sequence; every other modality, and a file without a VOI under ``file``, maps the frame's 1st and
   99th percentiles to 0 and 255. MONOCHROME1 is inverted afterwards (so bone is bright, as in MONOCHROME2).
   RGB / YBR files are converted to RGB (8 bits) and not windowed; PALETTE COLOR goes through its LUT.

Nothing of the header survives the read except, in memory, PatientID and SOPInstanceUID (to group and find
images); they are never written anywhere. Torch-free; pydicom is imported on first use.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np

from models.datasets.decode import Decoded, register_decoder
from models.datasets.options import MIP_MAX_FACTOR, PixelRules, ReadOptions
from models.errors import DatasetError, clip

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

_REQUIRED = {
    "Rows": "(0028,0010)",
    "Columns": "(0028,0011)",
    "BitsAllocated": "(0028,0100)",
    "SamplesPerPixel": "(0028,0002)",
    "PhotometricInterpretation": "(0028,0004)",
}
_NATIVE_REQUIRED = {"PixelRepresentation": "(0028,0103)"}
_PIXEL_ELEMENTS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_COLOR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420")


def is_dicom(data: bytes) -> bool:
    """A DICOM Part 10 file: 128 bytes of preamble, then ``DICM``."""
    return len(data) >= 132 and data[128:132] == b"DICM"


def _parse(data: bytes, where: str, *, header_only: bool = False) -> Dataset:
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    try:
        return dcmread(io.BytesIO(data), stop_before_pixels=header_only)  # never force=True
    except InvalidDicomError:
        raise DatasetError(
            f"{where}: not DICOM (a DICOM file starts with a 128-byte preamble and 'DICM'; this one does not)"
        ) from None
    except Exception as exc:  # truncated or corrupt header; pydicom's text may quote tag values: not shown
        raise DatasetError(f"{where}: not a readable DICOM file (corrupt header: {type(exc).__name__})") from None


def _text(ds: Dataset, keyword: str) -> str | None:
    try:
        value = ds.get(keyword)
    except Exception:
        return None
    text = "" if value is None else str(value).strip()
    return text or None


def instance_uid(data: bytes, where: str) -> str | None:
    """A DICOM file's SOPInstanceUID (from its header only), for labels.csv's ``sop_instance_uid`` column."""
    ds = _parse(data, where, header_only=True)
    return _text(ds, "SOPInstanceUID") or _text(ds.file_meta, "MediaStorageSOPInstanceUID")


def _transfer_syntax(ds: Dataset, where: str) -> None:
    from pydicom.pixels import get_decoder
    from pydicom.uid import UID

    uid = _text(ds.file_meta, "TransferSyntaxUID")
    if uid is None:
        raise DatasetError(f"{where}: the file meta has no Transfer Syntax UID (0002,0010)")
    name = UID(uid).name
    shown = clip(uid, 64) if name == uid else f"{name} ({clip(uid, 64)})"
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        raise DatasetError(
            f"{where}: unsupported transfer syntax {shown}: no pixel-data decoder exists for it"
        ) from None
    if not decoder.is_available:
        raise DatasetError(
            f"{where}: unsupported transfer syntax {shown}: its pixel-data decoder is not installed on this server"
        )


def _check(ds: Dataset, where: str, options: ReadOptions) -> tuple[int, int, int]:
    """Pixel data present, the tags needed to decode it, the pixel caps; returns (rows, columns, frames)."""
    if not any(element in ds for element in _PIXEL_ELEMENTS):
        raise DatasetError(
            f"{where}: the DICOM file has no pixel data (it is truncated, or a report, structured report, DICOMDIR "
            "or presentation state, which are not images)"
        )
    required = {**_REQUIRED, **(_NATIVE_REQUIRED if "PixelData" in ds else {})}
    missing = [f"{keyword} {tag}" for keyword, tag in required.items() if keyword not in ds]
    if missing:
        raise DatasetError(f"{where}: missing DICOM tags needed to decode its pixels: {', '.join(missing)}")
    _transfer_syntax(ds, where)
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        frames = int(ds.get("NumberOfFrames") or 1)
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: Rows, Columns or Number of Frames is not a number") from None
    if rows < 1 or columns < 1 or frames < 1:
        raise DatasetError(f"{where}: {columns}x{rows} pixels in {frames} frame(s) is not an image")
    if rows * columns > options.image_max_pixels:
        raise DatasetError(f"{where}: {columns}x{rows} is over the {options.image_max_pixels} pixel limit")
    if options.pixels.frames == "mip" and frames * rows * columns > MIP_MAX_FACTOR * options.image_max_pixels:
        raise DatasetError(
            f"{where}: {frames} frames of {columns}x{rows} are too many pixel values for a maximum-intensity "
            f"projection (limit {MIP_MAX_FACTOR * options.image_max_pixels})"
        )
    return rows, columns, frames


def _frame(ds: Dataset, index: int | None, where: str) -> np.ndarray:
    from pydicom.pixels import pixel_array

    try:
        return pixel_array(ds, index=index)
    except Exception as exc:  # the decoders' messages are technical (lengths, bit depths), bounded by clip
        raise DatasetError(
            f"{where}: its pixel data could not be decoded ({type(exc).__name__}: {clip(exc)})"
        ) from None


def _rescale(ds: Dataset, frame: int) -> tuple[float, float] | None:
    """(slope, intercept) from an enhanced file's functional groups, when the top level has no Rescale tags."""
    groups: list[Any] = []
    for keyword, item in (("SharedFunctionalGroupsSequence", 0), ("PerFrameFunctionalGroupsSequence", frame)):
        sequence = ds.get(keyword)
        if sequence and len(sequence) > item:
            groups.append(sequence[item])
    for group in groups:
        transform = group.get("PixelValueTransformationSequence")
        if transform:
            try:
                return float(transform[0].RescaleSlope), float(transform[0].RescaleIntercept)
            except (AttributeError, TypeError, ValueError):
                return None
    return None


def _modality_values(ds: Dataset, raw: np.ndarray, frame: int) -> np.ndarray:
    """Stored values -> modality values (HU for CT) as float32."""
    from pydicom.pixels import apply_modality_lut

    if "RescaleSlope" in ds or "ModalityLUTSequence" in ds:
        return np.asarray(apply_modality_lut(raw, ds), dtype=np.float32)
    enhanced = _rescale(ds, frame)
    values = raw.astype(np.float32)
    return values * enhanced[0] + enhanced[1] if enhanced else values


def _frame_values(ds: Dataset, frames: int, rules: PixelRules, where: str, gray: bool) -> tuple[np.ndarray, bool]:
    """The one frame the multi-frame rule picks (modality values for gray, raw for colour); (values, multi)."""
    if frames == 1:
        raw = _frame(ds, None, where)
        return (_modality_values(ds, raw, 0) if gray else raw), False
    if rules.frames != "mip":
        index = 0 if rules.frames == "first" else frames // 2
        raw = _frame(ds, index, where)
        return (_modality_values(ds, raw, index) if gray else raw), True
    peak: np.ndarray | None = None
    for index in range(frames):
        raw = _frame(ds, index, where)
        values = _modality_values(ds, raw, index) if gray else raw
        peak = values if peak is None else np.maximum(peak, values)
    assert peak is not None
    return peak, True


def window(values: np.ndarray, width: float, level: float, function: str = "LINEAR") -> np.ndarray:
    """DICOM's VOI window (PS3.3 C.11.2.1.2) onto 0..255: LINEAR (default), LINEAR_EXACT or SIGMOID."""
    x = values.astype(np.float64)
    function = (function or "LINEAR").upper()
    if function == "SIGMOID":
        out = 255.0 / (1.0 + np.exp(-4.0 * (x - level) / max(width, 1e-6)))
    elif function == "LINEAR_EXACT":
        out = np.clip((x - level) / max(width, 1e-6) + 0.5, 0.0, 1.0) * 255.0
    else:
        centre, span = level - 0.5, max(width, 1.0) - 1.0
        if span <= 0:
            out = np.where(x > centre, 255.0, 0.0)
        else:
            out = np.clip((x - centre) / span + 0.5, 0.0, 1.0) * 255.0
    return out


def percentile_window(values: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    """The frame's low / high percentiles -> 0 / 255, linear between, clipped (a flat frame becomes 0)."""
    low, high = (float(v) for v in np.percentile(values, percentiles))
    if high <= low:
        return np.zeros(values.shape, dtype=np.float64)
    return np.clip((values.astype(np.float64) - low) / (high - low), 0.0, 1.0) * 255.0


def _first(value: Any) -> float:
    """A DS value with VM >= 1 -> its first number."""
    try:
        return float(value[0]) if not isinstance(value, str | bytes) and hasattr(value, "__len__") else float(value)
    except (TypeError, ValueError, IndexError):
        raise DatasetError("a Window Center / Width value is not a number") from None


def _file_voi(ds: Dataset, values: np.ndarray, where: str) -> np.ndarray | None:
    """The file's own window or VOI LUT onto 0..255; ``None`` when it has neither."""
    if "WindowCenter" in ds and "WindowWidth" in ds:
        try:
            level, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
        except DatasetError as exc:
            raise DatasetError(f"{where}: {exc}") from None
        return window(values, width, level, _text(ds, "VOILUTFunction") or "LINEAR")
    sequence = ds.get("VOILUTSequence")
    if sequence:
        from pydicom.pixels import apply_voi

        try:
            bits = int(sequence[0].LUTDescriptor[2])
            mapped = np.asarray(apply_voi(values, ds), dtype=np.float64)
        except Exception as exc:
            raise DatasetError(f"{where}: its VOI LUT could not be applied ({type(exc).__name__})") from None
        return np.clip(mapped / max(2**bits - 1, 1), 0.0, 1.0) * 255.0
    return None


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(values, 0, 255)).astype(np.uint8)


def _color(ds: Dataset, values: np.ndarray, photometric: str, where: str) -> np.ndarray:
    """RGB (pydicom converts YBR) or PALETTE COLOR -> uint8 (H, W, 3)."""
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        try:
            values = apply_color_lut(values, ds)
        except Exception as exc:
            raise DatasetError(f"{where}: its palette could not be applied ({type(exc).__name__})") from None
        top = 255 if values.dtype == np.uint8 else 65535
    else:
        top = 2 ** int(ds.get("BitsStored") or ds.BitsAllocated) - 1
    if values.ndim != 3 or values.shape[-1] != 3:
        raise DatasetError(f"{where}: colour pixel data of shape {values.shape} is not (rows, columns, 3)")
    if values.dtype == np.uint8 and top == 255:
        return np.ascontiguousarray(values)
    return _to_uint8(values.astype(np.float64) * (255.0 / max(top, 1)))


def read_dicom(data: bytes, where: str, options: ReadOptions) -> Decoded:
    """Decode one DICOM file by the module's rules; the header's PatientID and SOPInstanceUID come along in memory."""
    try:
        return _read_dicom(data, where, options)
    except DatasetError:
        raise
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError, RuntimeError) as exc:
        # a malformed element (a value that is no number, a sequence nested without end...): pydicom's text may
        # quote tag values, so only its kind is shown
        raise DatasetError(f"{where}: not a usable DICOM image (a malformed element: {type(exc).__name__})") from None


def _read_dicom(data: bytes, where: str, options: ReadOptions) -> Decoded:
    rules = options.pixels
    if "DICOM" not in options.formats:
        raise DatasetError(f"{where}: DICOM is not an accepted format here ({', '.join(options.formats)})")
    ds = _parse(data, where)
    _rows, _columns, frames = _check(ds, where, options)
    photometric = (_text(ds, "PhotometricInterpretation") or "").upper()
    samples = int(ds.SamplesPerPixel)
    gray = photometric in ("MONOCHROME1", "MONOCHROME2") and samples == 1
    if not gray and photometric not in (*_COLOR, "PALETTE COLOR"):
        raise DatasetError(f"{where}: photometric interpretation {clip(photometric, 40)!r} is not supported")
    values, multi = _frame_values(ds, frames, rules, where, gray)
    patient, uid = _text(ds, "PatientID"), _text(ds, "SOPInstanceUID")
    if not gray:
        return Decoded(_color(ds, values, photometric, where)[..., :3], "color", patient, uid, False, multi)
    if values.ndim != 2:
        raise DatasetError(f"{where}: gray pixel data of shape {values.shape} is not (rows, columns)")
    modality = (_text(ds, "Modality") or "").upper()
    mapped, rule = None, "percentile"
    if rules.window == "file":
        mapped = _file_voi(ds, values, where)
        rule = "voi" if mapped is not None else rule
    elif modality == "CT":
        width, level = rules.width_level  # type: ignore[misc]
        mapped, rule = window(values, width, level), "ct_window"
    if mapped is None:
        mapped = percentile_window(values, rules.percentiles)
    image = _to_uint8(mapped)
    inverted = photometric == "MONOCHROME1"
    if inverted:
        image = 255 - image
    return Decoded(image[..., None], rule, patient, uid, inverted, multi)


register_decoder("DICOM", (".dcm", ".dicom"), read_dicom, sniff=is_dicom)
