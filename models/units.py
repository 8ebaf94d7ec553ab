"""One experiment as a graph of units (torch-free): what can run where, and what each piece waits for.

A unit is the smallest piece of an experiment that one worker runs on its own, reading only finished files
of the units it depends on and writing its own outputs atomically (:mod:`models.layout`):

* ``generator:<g>:<seed>`` — train generator ``g`` for ``seed`` (resuming from its checkpoint), sample its
  synthetic set, its GenMix export and its quality report. Needs nothing.
* ``filter:<seed>`` (only with ``filter_tau``) — score every generator's synthetic images of ``seed`` with that
  seed's baseline classifier. Needs the seed's generator units.
* ``classifier:<run id>`` — one classifier (arm, generator, seed, replicate). The real-only arms (baseline,
  MixUp, AugMix) need nothing; an arm with synthetic images needs its generator unit, and its filtered twin
  (with ``filter_tau``) that seed's filter unit too. With ``filter_tau`` the baseline replicate 0 of a seed also
  needs the filter unit, which trains that very classifier (the baseline then resumes from its finished
  checkpoint, so it is trained once and two hosts never train it at the same time).
* ``assemble`` — figures, ``results.json`` and the report's tables, from every other unit's files.

:func:`plan_units` lists them in the order one worker runs them one after another, which is the order the
whole-experiment pipeline always ran its stages in; ``index`` is that stage's place in the job's stage list.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from models.layout import filter_tag, run_id, variant_tag
from models.spec import ExperimentSpec, PlannedRun

UnitKind = Literal["generator", "filter", "classifier", "assemble"]
ASSEMBLE = "assemble"


class Unit(NamedTuple):
    key: str
    kind: UnitKind
    stage: str
    """The stage name the job shows while this unit runs (``generator dcgan seed 0``, ``classifier …``; the
    assemble unit's is its label in the units list: its stage, when it makes figures, is ``figures``)."""
    index: int
    """The stage index of this unit in a one-worker run (the assemble unit: the ``figures`` stage, if any)."""
    deps: tuple[str, ...] = ()
    generator: str | None = None
    seed: int | None = None
    run: int | None = None
    """Index into ``spec.planned_runs()`` of a classifier unit."""


def generator_key(generator: str, seed: int) -> str:
    return f"generator:{generator}:{seed}"


def filter_key(seed: int) -> str:
    return f"filter:{seed}"


def planned_run_id(spec: ExperimentSpec, planned: PlannedRun) -> str:
    """The run id of one planned classifier: a grid combination's settings tag, or a filtered run's threshold."""
    variant = None
    if planned.arm == "genmix" and not planned.fixed:
        variant = variant_tag(planned.genmix or {}, spec.fixed_genmix())
    if planned.filtered:
        assert spec.filter_tau is not None
        variant = filter_tag(spec.filter_tau)
    return run_id(planned.arm, planned.generator, planned.seed, planned.replicate, variant)


def stage_count(spec: ExperimentSpec) -> int:
    """The number of stages a job shows: every unit but ``assemble``, plus ``figures`` when it makes them."""
    return len(plan_units(spec)) - (0 if spec.figures else 1)


def plan_units(spec: ExperimentSpec) -> list[Unit]:
    """Every unit of the experiment with its dependencies, in one-worker order."""
    generators = spec.trained_generators
    filtering = spec.filter_tau is not None and bool(generators)
    units: list[Unit] = []
    for seed in spec.seeds:
        for generator in generators:
            units.append(Unit(generator_key(generator, seed), "generator", f"generator {generator} seed {seed}",
                              len(units), (), generator, seed))  # fmt: skip
    if filtering:
        for seed in spec.seeds:
            deps = tuple(generator_key(g, seed) for g in generators)
            units.append(Unit(filter_key(seed), "filter", f"filter seed {seed}", len(units), deps, None, seed))
    for number, planned in enumerate(spec.planned_runs()):
        rid = planned_run_id(spec, planned)
        deps: tuple[str, ...] = ()
        if planned.generator is not None:
            deps = (generator_key(planned.generator, planned.seed),)
            if planned.filtered:
                deps += (filter_key(planned.seed),)
        elif filtering and planned.arm == "baseline" and planned.replicate == 0:
            deps = (filter_key(planned.seed),)
        units.append(Unit(f"classifier:{rid}", "classifier", f"classifier {rid}", len(units), deps,
                          planned.generator, planned.seed, number))  # fmt: skip
    everything = tuple(unit.key for unit in units)
    units.append(Unit(ASSEMBLE, "assemble", "figures and results" if spec.figures else "results", len(units),
                      everything))  # fmt: skip
    return units
