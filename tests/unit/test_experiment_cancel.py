"""Cancelling an experiment outside its training loops (issue 11, item 15): right after a generator trained
(before its sampling, export and quality measures) and during the figures stage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from models.datasets import ImageSet, slice_imageset
from models.experiment import NullObserver, run_experiment
from models.hooks import Cancelled
from models.layout import OutputLayout
from models.spec import ExperimentSpec


class StopAt(NullObserver):
    """Says stop once ``when(stage, step, total)`` was true."""

    def __init__(self, when: Any) -> None:
        self.when = when
        self.stage_name = ""
        self.stop = False

    def stage(self, name: str, index: int, count: int) -> None:
        self.stage_name = name
        self.stop = self.stop or self.when(name, None, None)

    def progress(self, step: int, total: int, metrics: dict[str, float]) -> None:
        self.stop = self.stop or self.when(self.stage_name, step, total)

    def should_stop(self) -> bool:
        return self.stop


@pytest.fixture(scope="module")
def small(breast: ImageSet) -> ImageSet:
    return slice_imageset(breast, per_split_max=40, seed=0)


def _spec() -> ExperimentSpec:
    return ExperimentSpec(
        generators=["dcgan"],
        arms=["baseline", "genmix"],
        seeds=[0],
        classifier="smallcnn",
        classifier_settings={"epochs": 1, "batch_size": 32},
        generator_settings={"dcgan": {"iterations": 20, "batch_size": 16, "ngf": 8, "ndf": 8, "log_every": 10}},
        figures=True,
    )


def test_a_cancel_after_generator_training_stops_before_sampling(small: ImageSet, tmp_path: Path) -> None:
    def trained(stage: str, step: int | None, total: int | None) -> bool:
        return stage.startswith("generator") and step is not None and step == total

    with pytest.raises(Cancelled):
        run_experiment(small, _spec(), tmp_path, StopAt(trained))
    layout = OutputLayout(tmp_path)
    assert (layout.generator_model("dcgan", 0) / "config.json").is_file()  # the trained generator is kept
    assert not layout.synthetic("dcgan", 0).exists() and not layout.quality("dcgan", 0).exists()


def test_a_cancel_in_the_figures_stage_stops_the_experiment(small: ImageSet, tmp_path: Path) -> None:
    with pytest.raises(Cancelled):
        run_experiment(small, _spec(), tmp_path, StopAt(lambda stage, step, total: stage == "figures"))
    layout = OutputLayout(tmp_path)
    assert layout.synthetic("dcgan", 0).is_file()
    assert not layout.results.exists()
