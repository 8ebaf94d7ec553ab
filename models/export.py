"""GenMix exports: a batch of mixed images with full traceability, for a lab's own training code.

The npz holds ``images`` (float32, N×C×H×W, same 0–255 scale as the uint8 input), ``soft_labels`` (N×K),
``lam`` (N), ``partner_pool`` (0 real, 1 synthetic), ``partner_index`` (into that pool), ``real_index``
(into the real training split) and ``class_names``.

Memory: the mixer's pool is the uint8 images themselves (a channels-last view of the (N, H, W, C) arrays,
no float copy, no layout copy), and ``images`` is blended and written :data:`EXPORT_CHUNK` images at a
time straight into its npz member, so an export never holds more than one chunk of float images.
"""

from __future__ import annotations

import itertools
import zipfile
from pathlib import Path

import numpy as np
import torch

from models.checkpoint import atomic_path
from models.datasets import Split, load_npz, load_synthetic_npz
from models.genmix import GenMixConfig, GenMixer, MixBatch
from models.profiles import pixel_bounded_batch

EXPORT_CHUNK = 256
"""Images blended and written per chunk at most; capped by the pixel budget
(:func:`models.profiles.pixel_bounded_batch`): 256 × 64² gray (4 MB of float32), 21 × 128² RGB (4 MB), never
the 154 MB of 256 × 224² RGB."""


def _raw(split: Split) -> torch.Tensor:
    """uint8 (N, H, W, C) -> a uint8 (N, C, H, W) channels-last view of the same memory (no copy)."""
    return torch.from_numpy(np.ascontiguousarray(split.images)).permute(0, 3, 1, 2)


def build_mixer(real: Split, synthetic: Split, num_classes: int, config: GenMixConfig, seed: int) -> GenMixer:
    """A mixer over raw-scale (0–255) images of the real and synthetic sets, its pool kept as uint8."""
    return GenMixer(
        real_images=_raw(real),
        real_labels=torch.from_numpy(real.labels).long(),
        synthetic_images=_raw(synthetic),
        synthetic_labels=torch.from_numpy(synthetic.labels).long(),
        num_classes=num_classes,
        config=config,
        seed=seed,
    )


def _write_member(archive: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
        np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def _write_images(archive: zipfile.ZipFile, batch: MixBatch, chunk: int) -> None:
    """``images`` as float32 (N, C, H, W), blended ``chunk`` images at a time (at most: capped by the pixel
    budget) into one npy member."""
    if chunk < 1:
        raise ValueError(f"chunk size must be >= 1, got {chunk}")
    probe = batch.blend(batch.rows[:1], batch.weights[:1])  # one image's shape, the rest not blended yet
    chunks = batch.image_chunks(pixel_bounded_batch(chunk, tuple(probe.shape[1:])))
    first = next(chunks)
    shape = (len(batch), *first.shape[1:])
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False, "shape": shape}
    with archive.open("images.npy", "w", force_zip64=True) as member:
        np.lib.format.write_array_header_2_0(member, header)
        for block in itertools.chain([first], chunks):
            member.write(np.ascontiguousarray(block.cpu().numpy(), dtype=np.float32).data)


def save_export(batch: MixBatch, path: Path, class_names: list[str], chunk: int = EXPORT_CHUNK) -> Path:
    """Write ``batch`` atomically in the export format above (a zip of npy members, as ``np.savez_compressed``),
    blending ``chunk`` images at a time, capped by the pixel budget."""
    with atomic_path(Path(path)) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        _write_images(archive, batch, chunk)
        _write_member(archive, "soft_labels", batch.soft_labels.cpu().numpy().astype(np.float32))
        _write_member(archive, "lam", batch.lam.cpu().numpy().astype(np.float32))
        _write_member(archive, "partner_pool", batch.partner_pool.cpu().numpy().astype(np.int8))
        _write_member(archive, "partner_index", batch.partner_index.cpu().numpy().astype(np.int64))
        _write_member(archive, "real_index", batch.real_index.cpu().numpy().astype(np.int64))
        _write_member(archive, "class_names", np.asarray(class_names, dtype=str))
    return Path(path)


def export_genmix(
    real_path: Path,
    synthetic_path: Path,
    out_path: Path,
    count: int,
    seed: int = 0,
    config: GenMixConfig | None = None,
) -> Path:
    """``genmix mix``: mix the train split of ``real_path`` with the synthetic set at ``synthetic_path``."""
    real = load_npz(real_path)
    synthetic = load_synthetic_npz(synthetic_path, num_classes=real.num_classes)
    if synthetic.images.shape[1:] != real.train.images.shape[1:]:
        raise ValueError(
            f"{synthetic_path}: synthetic images {synthetic.images.shape[1:]} do not match the real "
            f"images {real.train.images.shape[1:]} (H, W, C)"
        )
    mixer = build_mixer(real.train, synthetic, real.num_classes, config or GenMixConfig(), seed)
    return save_export(mixer.mix_export(count), out_path, real.class_names)
