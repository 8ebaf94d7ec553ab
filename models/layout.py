"""The output folder of an experiment, written once: where each file goes and what a path there means.

The pipeline writes through :class:`OutputLayout`; the worker reads paths back through :func:`describe`
(artifact kind, seed, generator, run), so the layout and its parsing cannot drift apart. Torch-free.

::

    config.json                        the resolved configuration
    seed{S}/{generator}/checkpoint/    generator training checkpoints (resume)
    seed{S}/{generator}/model/         the trained generator (safetensors + config.json)
    seed{S}/{generator}/train_stats.json, quality.json
    seed{S}/{generator}/filter.json    the synthetic filter's confidences and kept images (``filter_tau``)
    seed{S}/{generator}/synthetic.npz  the synthetic set: ``images`` (N,H,W[,3]) uint8, ``labels`` (N,)
    seed{S}/{generator}/genmix_export.npz  GenMix images (float32 N×C×H×W, 0–255), soft_labels, lam,
                                       partner_pool (0 real, 1 synthetic), partner_index, real_index
    runs/{run_id}.json                 one record per arm and seed (see :func:`run_id`)
    runs/{run_id}/checkpoint/          classifier checkpoint (resume)
    figures/*.png                      sample grids, t-SNE, confusion matrices, learning curves
    samples/*.png                      the service's sample PNGs (not an artifact)
    results.json                       config, versions, records, summary table
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ARTIFACT_KINDS = ("figure", "results", "synthetic", "genmix_export", "generator", "checkpoint", "record", "config")

_SEED_DIR = re.compile(r"^seed(\d+)$")
_BASELINE_RUN = re.compile(r"^baseline-seed\d+$")  # a seed's baseline, classifier replicate 0 (:func:`run_id`)
_GENERATOR_FILES = {"synthetic.npz": "synthetic", "genmix_export.npz": "genmix_export", "train_stats.json": "generator"}


def run_id(arm: str, generator: str | None, seed: int, replicate: int = 0, variant: str | None = None) -> str:
    """``baseline-seed0`` for real-only arms, ``genmix-dcgan-seed0`` for arms that use a generator.

    Classifier replicate j > 0 of a seed (``classifier_seeds_per_generator``) adds ``-c{j}``; a GenMix combination
    of a list-valued grid other than the fixed one adds its :func:`variant_tag` (``genmix-dcgan-seed0-c1-a1``).
    Replicate 0 of the fixed settings keeps the id it had before either existed, so older folders resume.
    """
    rid = f"{arm}-{generator}-seed{seed}" if generator else f"{arm}-seed{seed}"
    if replicate:
        rid += f"-c{replicate}"
    return f"{rid}-{variant}" if variant else rid


_TAGS = {"alpha": "a", "synthetic_ratio": "r", "mix_prob": "m", "partner_pool": "p"}
_POOL_TAGS = {"real+synthetic": "rs", "synthetic": "s"}


def variant_tag(settings: dict[str, object], fixed: dict[str, object]) -> str | None:
    """The GenMix settings that differ from the fixed ones, as a file-name-safe tag (``a0p1-psyn``: α 0.1,
    synthetic-only partners); None when they are the fixed ones. No dots, so a run folder's name is its id."""
    parts = []
    for key, letter in _TAGS.items():
        value = settings.get(key)
        if key in settings and value != fixed.get(key):
            text = _POOL_TAGS.get(str(value), str(value)) if key == "partner_pool" else f"{float(value):g}"  # type: ignore[arg-type]
            parts.append(letter + text.replace(".", "p").replace("-", "m").replace("+", ""))
    return "-".join(parts) or None


def filter_tag(tau: float) -> str:
    """The tag of a synthetic arm's run on the images the filter at ``tau`` kept (``f0p5``): the threshold is in the
    id, so a folder holds the runs of several thresholds and the unfiltered runs side by side."""
    return "f" + f"{float(tau):g}".replace(".", "p").replace("-", "m")


@dataclass(frozen=True)
class OutputLayout:
    """Paths under one experiment's output folder ``root``."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def results(self) -> Path:
        return self.root / "results.json"

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    def generator_dir(self, generator: str, seed: int) -> Path:
        return self.root / f"seed{seed}" / generator

    def generator_checkpoint(self, generator: str, seed: int) -> Path:
        return self.generator_dir(generator, seed) / "checkpoint"

    def generator_model(self, generator: str, seed: int) -> Path:
        return self.generator_dir(generator, seed) / "model"

    def train_stats(self, generator: str, seed: int) -> Path:
        return self.generator_dir(generator, seed) / "train_stats.json"

    def quality(self, generator: str, seed: int) -> Path:
        return self.generator_dir(generator, seed) / "quality.json"

    def synthetic(self, generator: str, seed: int) -> Path:
        return self.generator_dir(generator, seed) / "synthetic.npz"

    def export(self, generator: str, seed: int) -> Path:
        return self.generator_dir(generator, seed) / "genmix_export.npz"

    def synthetic_filter(self, generator: str, seed: int) -> Path:
        return self.generator_dir(generator, seed) / "filter.json"

    def run_record(self, rid: str) -> Path:
        return self.root / "runs" / f"{rid}.json"

    def run_checkpoint(self, rid: str) -> Path:
        return self.root / "runs" / rid / "checkpoint"

    def reused_by_extension(self, relative: Path) -> bool:
        """Whether the file ``relative`` of this finished study serves a study that extends it (more seeds, arms, a
        filter): its generators, synthetic sets, filters, run records, figures and configuration do; what describes
        the study as a whole (results, report, sample PNGs) does not, nor a checkpoint of a finished unit (a
        generator whose synthetic set is written, a classifier run whose record is), except each seed's baseline
        run, the model a filter added later predicts with (:meth:`ExperimentRunner.filter_stage`)."""
        parts = relative.parts
        if not parts or parts[0] in ("results.json", "report.md", "samples"):
            return False
        info = describe(relative)
        if info.kind != "checkpoint":
            return True
        if info.run_id is not None:
            return _BASELINE_RUN.match(info.run_id) is not None or not self.run_record(info.run_id).is_file()
        assert info.generator is not None and info.seed is not None
        return not self.synthetic(info.generator, info.seed).is_file()

    def synthetic_sets(self) -> list[Path]:
        """Every finished synthetic set, in a fixed order."""
        return sorted(self.root.glob("seed*/*/synthetic.npz"))


@dataclass(frozen=True)
class PathInfo:
    """What a path under the output folder is: its artifact kind (None: not an artifact) and whose it is."""

    kind: str | None
    seed: int | None = None
    generator: str | None = None
    run_id: str | None = None

    def meta(self) -> dict[str, int | str]:
        """Seed, generator and run id, as far as the path tells them."""
        found = {"seed": self.seed, "generator": self.generator, "run_id": self.run_id}
        return {key: value for key, value in found.items() if value is not None}


def describe(relative: Path | str) -> PathInfo:
    """Parse a path relative to the output folder (the inverse of :class:`OutputLayout`)."""
    parts = Path(relative).parts
    if not parts or parts[0] == "samples" or parts[-1].startswith(".") or parts[-1].endswith(".tmp"):
        return PathInfo(None)
    seed_match = _SEED_DIR.match(parts[0])
    if seed_match and len(parts) >= 3:
        seed, generator = int(seed_match.group(1)), parts[1]
        if parts[2] == "checkpoint":
            kind: str | None = "checkpoint"
        elif parts[2] == "model":
            kind = "generator"
        else:
            kind = _GENERATOR_FILES.get(parts[2]) if len(parts) == 3 else None
        return PathInfo(kind, seed, generator)
    if parts[0] == "runs" and len(parts) >= 2:
        rid = Path(parts[1]).stem
        if "checkpoint" in parts:
            return PathInfo("checkpoint", run_id=rid)
        return PathInfo("record" if len(parts) == 2 and parts[1].endswith(".json") else None, run_id=rid)
    if parts == ("results.json",):
        return PathInfo("results")
    if parts == ("config.json",):
        return PathInfo("config")
    if parts[0] == "figures" and parts[-1].endswith(".png"):
        return PathInfo("figure")
    return PathInfo(None)
