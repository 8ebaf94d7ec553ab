"""Materialises a bounded number of sample PNGs per class: real, synthetic, and GenMix with both parents.

Every sample has a ``source_key`` unique in its job, so a resumed job (or the final sweep) never writes one
twice. A GenMix sample points at its two parents, which are materialised too: the real training image and
the partner (real or synthetic), so a client can show all three side by side with λ.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core.crud.samples import add_sample, find_sample
from core.db.session import Database
from core.storage import ArtifactStore
from models.layout import OutputLayout, describe


def png_bytes(image: np.ndarray) -> bytes:
    """uint8 (H, W, 1|3) -> PNG bytes."""
    array = image[..., 0] if image.shape[-1] == 1 else image
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def export_to_uint8(images: np.ndarray) -> np.ndarray:
    """GenMix export images (float N×C×H×W on the 0–255 scale; [0, 1] tolerated) -> uint8 N×H×W×C."""
    scale = 255.0 if images.size and float(images.max()) <= 1.0 else 1.0
    return np.clip(np.rint(images * scale), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def _seed_and_generator(out_dir: Path, path: Path) -> tuple[int, str]:
    """Whose synthetic set or export ``path`` is, as :mod:`models.layout` parses it."""
    info = describe(path.relative_to(out_dir))
    if info.seed is None or info.generator is None:
        raise ValueError(f"{path}: not a generator's file under {out_dir}")
    return info.seed, info.generator


def _load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


class SampleWriter:
    def __init__(
        self,
        db: Database,
        store: ArtifactStore,
        job_id: str,
        out_dir: Path,
        train_images: np.ndarray,
        train_labels: np.ndarray,
        num_classes: int,
        per_class: int,
    ) -> None:
        self.db = db
        self.store = store
        self.job_id = job_id
        self.out_dir = out_dir
        self.layout = OutputLayout(out_dir)
        self.train_images = train_images
        self.train_labels = train_labels
        self.num_classes = num_classes
        self.per_class = per_class
        self._synthetic: dict[tuple[int, str], dict[str, np.ndarray]] = {}

    # -- one sample ---------------------------------------------------------------------------------------
    def _save(self, source_key: str, kind: str, image: np.ndarray, label: int, **fields: Any) -> int:
        with self.db.session() as session:
            existing = find_sample(session, job_id=self.job_id, source_key=source_key)
            if existing is not None:
                return existing.id
            target = self.layout.samples / f"{source_key.replace(':', '-')}.png"
            self.store.write_bytes(target, png_bytes(image))
            sample = add_sample(
                session,
                job_id=self.job_id,
                source_key=source_key,
                kind=kind,
                label=int(label),
                width=int(image.shape[1]),
                height=int(image.shape[0]),
                path=self.store.relative(target),
                **fields,
            )
            return sample.id

    def real(self, index: int) -> int:
        index = int(index)
        return self._save(f"real:{index}", "real", self.train_images[index], int(self.train_labels[index]),
                          source_index=index)  # fmt: skip

    def synthetic(self, seed: int, generator: str, index: int) -> int:
        data = self._synthetic_set(seed, generator)
        index = int(index)
        image, label = _hwc(data["images"][index]), int(data["labels"][index])
        key = f"synthetic:{generator}:{seed}:{index}"
        return self._save(key, "synthetic", image, label, generator=generator, seed=seed, source_index=index)

    def _synthetic_set(self, seed: int, generator: str) -> dict[str, np.ndarray]:
        key = (seed, generator)
        if key not in self._synthetic:
            self._synthetic[key] = _load(self.layout.synthetic(generator, seed))
        return self._synthetic[key]

    # -- batches ------------------------------------------------------------------------------------------
    def _pick(self, labels: np.ndarray, seed: int = 0) -> list[int]:
        """Up to ``per_class`` indices per class, spread over the set, in a fixed order."""
        rng = np.random.default_rng(seed)
        chosen: list[int] = []
        for k in range(self.num_classes):
            members = np.flatnonzero(labels == k)
            chosen += sorted(rng.permutation(members)[: self.per_class].tolist())
        return chosen

    def real_samples(self) -> None:
        for index in self._pick(self.train_labels):
            self.real(index)

    def from_synthetic(self, path: Path) -> None:
        seed, generator = _seed_and_generator(self.out_dir, path)
        data = self._synthetic_set(seed, generator)
        for index in self._pick(data["labels"].reshape(-1), seed):
            self.synthetic(seed, generator, index)
        export = self.layout.export(generator, seed)
        if export.is_file():
            self.from_export(export)

    def from_export(self, path: Path) -> None:
        """GenMix samples with λ and both parents; waits for the synthetic set when the export comes first."""
        seed, generator = _seed_and_generator(self.out_dir, path)
        if not self.layout.synthetic(generator, seed).is_file():
            return  # the runner writes the export first; from_synthetic comes back here
        data = _load(path)
        soft = data["soft_labels"]
        for index in self._pick(soft.argmax(axis=1), seed):
            image = export_to_uint8(data["images"][index : index + 1])[0]
            from_synthetic = int(data["partner_pool"][index]) == 1
            partner = data["partner_index"][index]
            partner_id = self.synthetic(seed, generator, partner) if from_synthetic else self.real(partner)
            self._save(
                f"genmix:{generator}:{seed}:{index}",
                "genmix",
                image,
                int(soft[index].argmax()),
                soft_label=[round(float(v), 6) for v in soft[index]],
                lam=float(data["lam"][index]),
                partner_pool="synthetic" if from_synthetic else "real",
                parent_real_id=self.real(data["real_index"][index]),
                parent_partner_id=partner_id,
                generator=generator,
                seed=seed,
                source_index=index,
            )

    def sweep(self) -> None:
        """Materialise from every finished synthetic set under the job folder (idempotent)."""
        if self.per_class <= 0:
            return
        for path in self.layout.synthetic_sets():
            self.from_synthetic(path)


def _hwc(image: np.ndarray) -> np.ndarray:
    return image[..., None] if image.ndim == 2 else image
