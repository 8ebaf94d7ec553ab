"""One GenMix experiment: generators per seed, then one classifier per arm and seed, then metrics and figures.

This is the whole science pipeline behind both ``genmix run`` and the service's workers. It is resumable:
everything it finishes is written under ``out_dir`` and skipped on a rerun with the same directory, and
unfinished generator / classifier training resumes from its last checkpoint.

Layout of ``out_dir``::

    config.json                        the resolved configuration
    seed{S}/{generator}/checkpoint/    generator training checkpoints (resume)
    seed{S}/{generator}/model/         the trained generator (safetensors + config.json)
    seed{S}/{generator}/synthetic.npz  the synthetic set: ``images`` (N,H,W[,3]) uint8, ``labels`` (N,)
    seed{S}/{generator}/genmix_export.npz  GenMix images: images (float32 N×C×H×W, [0,1]), soft_labels, lam,
                                       partner_pool (0 real, 1 synthetic), partner_index, real_index
    runs/{run_id}.json                 one record per arm and seed (see :func:`run_id`)
    runs/{run_id}/checkpoint/          classifier checkpoint (resume)
    figures/*.png                      sample grids, t-SNE, confusion matrices, learning curves
    results.json                       config, versions, records, summary table
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

ARMS = ("baseline", "mixup", "augmix", "generative", "genmix")
GENERATIVE_ARMS = ("generative", "genmix")
PROFILES = ("quick", "paper")


class Observer(Protocol):
    """What the caller (CLI or worker) learns while an experiment runs, and how it can stop it."""

    def stage(self, name: str, index: int, count: int) -> None:
        """A stage starts, e.g. ``generator dcgan seed 0`` or ``classifier genmix-dcgan seed 0``."""

    def progress(self, step: int, total: int, metrics: dict[str, float]) -> None:
        """Progress within the current stage."""

    def should_stop(self) -> bool:
        """True once the experiment should stop (cooperative cancellation)."""

    def run_finished(self, record: dict[str, Any]) -> None:
        """One arm × seed finished with its metrics (the record also written to ``runs/{run_id}.json``)."""

    def artifact(self, kind: str, path: Path, meta: dict[str, Any]) -> None:
        """A file was written: kind in figure, results, synthetic, genmix_export, generator, checkpoint."""


@dataclass
class ExperimentConfig:
    """Everything that defines an experiment; ``classifier`` / ``generator`` dicts override the profile."""

    generators: list[str] = field(default_factory=lambda: ["dcgan"])
    arms: list[str] = field(default_factory=lambda: list(ARMS))
    synthetic_ratio: float = 0.5
    alpha: float = 0.3
    beta: float = 1.0
    partner_pool: str = "real+synthetic"
    class_balanced: bool = False
    mix_prob: float = 1.0
    profile: str = "quick"
    seeds: list[int] = field(default_factory=lambda: [0])
    classifier: dict[str, Any] = field(default_factory=dict)
    generator: dict[str, dict[str, Any]] = field(default_factory=dict)
    device: str = "auto"
    export_per_class: int = 16
    figures: bool = True


def run_id(arm: str, generator: str | None, seed: int) -> str:
    """``baseline-seed0`` for real-only arms, ``genmix-dcgan-seed0`` for arms that use a generator."""
    return f"{arm}-{generator}-seed{seed}" if generator else f"{arm}-seed{seed}"


class NullObserver:
    """An observer that ignores everything and never stops."""

    def stage(self, name: str, index: int, count: int) -> None: ...

    def progress(self, step: int, total: int, metrics: dict[str, float]) -> None: ...

    def should_stop(self) -> bool:
        return False

    def run_finished(self, record: dict[str, Any]) -> None: ...

    def artifact(self, kind: str, path: Path, meta: dict[str, Any]) -> None: ...


def validate_config(config: ExperimentConfig) -> None:
    """Reject an experiment that cannot run, before any work starts."""
    from models.generators import available_generators

    unknown_arms = [a for a in config.arms if a not in ARMS]
    if unknown_arms or not config.arms:
        raise ValueError(f"unknown or no arms {unknown_arms}; choose from {', '.join(ARMS)}")
    unknown = [g for g in config.generators if g not in available_generators()]
    if unknown:
        raise ValueError(f"unknown generators {unknown}; available: {', '.join(available_generators())}")
    if any(a in GENERATIVE_ARMS for a in config.arms) and not config.generators:
        raise ValueError("the generative and genmix arms need at least one generator")
    if config.profile not in PROFILES:
        raise ValueError(f"unknown profile {config.profile!r}; choose from {', '.join(PROFILES)}")
    if not 0 < config.synthetic_ratio <= 10:
        raise ValueError("synthetic_ratio must be in (0, 10]")
    if not config.seeds:
        raise ValueError("at least one seed is needed")
    if config.partner_pool not in ("real+synthetic", "synthetic"):
        raise ValueError("partner_pool must be 'real+synthetic' or 'synthetic'")


def planned_runs(config: ExperimentConfig) -> list[tuple[str, str | None, int]]:
    """(arm, generator, seed) for every classifier the experiment trains, in order."""
    runs: list[tuple[str, str | None, int]] = []
    for seed in config.seeds:
        for arm in config.arms:
            if arm in GENERATIVE_ARMS:
                runs.extend((arm, gen, seed) for gen in config.generators)
            else:
                runs.append((arm, None, seed))
    return runs


def run_experiment(
    dataset: Any,
    config: ExperimentConfig,
    out_dir: Path,
    observer: Observer | None = None,
) -> dict[str, Any]:
    """Run (or resume) the whole experiment; returns the results also written to ``out_dir/results.json``."""
    from models.runner import ExperimentRunner

    validate_config(config)
    return ExperimentRunner(dataset, config, Path(out_dir), observer or NullObserver()).run()
