"""GenMix exports: a batch of mixed images with full traceability, for a lab's own training code.

The npz holds ``images`` (float32, N×C×H×W, same 0–255 scale as the uint8 input), ``soft_labels`` (N×K),
``lam`` (N), ``partner_pool`` (0 real, 1 synthetic), ``partner_index`` (into that pool), ``real_index``
(into the real training split) and ``class_names``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from models.checkpoint import atomic_path
from models.datasets import Split, load_npz, load_synthetic_npz
from models.genmix import GenMixConfig, GenMixer, MixBatch
from models.runtime import DTYPE


def _raw(split: Split) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float (N, C, H, W) keeping the 0–255 scale."""
    return torch.from_numpy(np.ascontiguousarray(split.images)).permute(0, 3, 1, 2).to(DTYPE)


def build_mixer(real: Split, synthetic: Split, num_classes: int, config: GenMixConfig, seed: int) -> GenMixer:
    """A mixer over raw-scale (0–255) images of the real and synthetic sets."""
    return GenMixer(
        real_images=_raw(real),
        real_labels=torch.from_numpy(real.labels).long(),
        synthetic_images=_raw(synthetic),
        synthetic_labels=torch.from_numpy(synthetic.labels).long(),
        num_classes=num_classes,
        config=config,
        seed=seed,
    )


def save_export(batch: MixBatch, path: Path, class_names: list[str]) -> Path:
    """Write ``batch`` atomically in the export format above."""
    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(
            handle,
            images=batch.images.cpu().numpy().astype(np.float32),
            soft_labels=batch.soft_labels.cpu().numpy().astype(np.float32),
            lam=batch.lam.cpu().numpy().astype(np.float32),
            partner_pool=batch.partner_pool.cpu().numpy().astype(np.int8),
            partner_index=batch.partner_index.cpu().numpy().astype(np.int64),
            real_index=batch.real_index.cpu().numpy().astype(np.int64),
            class_names=np.asarray(class_names, dtype=str),
        )
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
