"""The unit graph of a job (models/units.py) and the job units' bookkeeping (core/crud/units.py) on PostgreSQL:
what waits for what, the one-worker order, the claim's compare-and-set, re-queueing a dead worker's unit."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete

from core.crud import units as unit_crud
from core.db.orm import Job
from core.db.session import Database
from models.spec import ExperimentSpec
from models.units import ASSEMBLE, plan_units, stage_count


def _spec(**overrides: Any) -> ExperimentSpec:
    fields: dict[str, Any] = {
        "generators": ["dcgan", "stylegan"],
        "arms": ["baseline", "mixup", "generative", "genmix"],
        "seeds": [0, 1],
        "profile": "quick",
        "figures": False,
    }
    fields.update(overrides)
    return ExperimentSpec.model_validate(fields)


def test_real_only_arms_wait_for_nothing_and_synthetic_ones_for_their_generator() -> None:
    units = {unit.key: unit for unit in plan_units(_spec())}
    assert units["classifier:baseline-seed0"].deps == () and units["classifier:mixup-seed1"].deps == ()
    assert units["classifier:genmix-dcgan-seed1"].deps == ("generator:dcgan:1",)
    assert units["classifier:generative-stylegan-seed0"].deps == ("generator:stylegan:0",)
    assert set(units[ASSEMBLE].deps) == set(units) - {ASSEMBLE}
    assert len([u for u in units.values() if u.kind == "generator"]) == 4
    assert len([u for u in units.values() if u.kind == "classifier"]) == 2 * (2 + 2 + 2)


def test_the_filter_waits_for_its_seed_s_generators_and_the_baseline_for_the_filter() -> None:
    units = {unit.key: unit for unit in plan_units(_spec(filter_tau=0.5))}
    assert units["filter:1"].deps == ("generator:dcgan:1", "generator:stylegan:1")
    assert units["classifier:baseline-seed1"].deps == ("filter:1",)  # the filter trains that classifier
    assert units["classifier:genmix-dcgan-seed1"].deps == ("generator:dcgan:1",)  # unfiltered: no filter to wait for
    assert units["classifier:genmix-dcgan-seed1-f0p5"].deps == ("generator:dcgan:1", "filter:1")
    assert units["classifier:generative-stylegan-seed0-f0p5"].deps == ("generator:stylegan:0", "filter:0")
    assert units["classifier:mixup-seed0"].deps == ()


def test_units_keep_the_one_worker_stage_order() -> None:
    for spec in (_spec(), _spec(filter_tau=0.5, figures=True), _spec(arms=["baseline", "augmix"])):
        units = plan_units(spec)
        assert [unit.index for unit in units] == list(range(len(units)))
        for unit in units:  # every dependency comes earlier: the one-worker order never waits
            assert all(dep in {u.key for u in units[: unit.index]} for dep in unit.deps), unit
        stages = [unit.stage for unit in units if unit.kind != "assemble" or spec.figures]
        assert len(stages) == stage_count(spec)


def test_unit_claims_are_compare_and_set_and_a_lost_unit_is_queued_again(db: Database, dataset: dict[str, Any]) -> None:
    job_id = str(uuid.uuid4())
    with db.session() as session:
        session.add(Job(id=job_id, owner="fanout", dataset_id=dataset["id"], spec={}, queue="cpu", status="running",
                        attempts=1, max_attempts=2, out_dir=f"jobs/{job_id}"))  # fmt: skip
        session.commit()
    planned = [unit_crud.PlannedUnit(u.key, u.kind, u.stage, u.index, u.deps) for u in plan_units(_spec(seeds=[0]))]
    try:
        with db.session() as session:
            unit_crud.plan(session, job_id=job_id, units=planned)
            ready = [u.key for u in unit_crud.ready_units(session, job_id)]
            assert "classifier:baseline-seed0" in ready and "classifier:genmix-dcgan-seed0" not in ready
            assert sorted(key for key, _ in unit_crud.mark_enqueued(session, job_id=job_id)) == sorted(ready)
            assert unit_crud.mark_enqueued(session, job_id=job_id) == []  # published once
            first = unit_crud.claim_unit(session, job_id=job_id, key="generator:dcgan:0", host="a", pid=1)
            second = unit_crud.claim_unit(session, job_id=job_id, key="generator:dcgan:0", host="b", pid=2)
            assert (first.outcome, first.attempt, second.outcome) == ("run", 1, "skip")
            waiting = unit_crud.claim_unit(session, job_id=job_id, key="classifier:genmix-dcgan-seed0", host="b", pid=2)
            assert waiting.outcome == "skip" and waiting.reason == "not ready"
            assert unit_crud.requeue_dead(session, job_id=job_id, alive=lambda unit: False) == ["generator:dcgan:0"]
            again = unit_crud.claim_unit(session, job_id=job_id, key="generator:dcgan:0", host="b", pid=2)
            assert again.attempt == 2
            assert unit_crud.heartbeat_unit(session, job_id=job_id, key="generator:dcgan:0", attempt=1) is not None
            assert unit_crud.heartbeat_unit(session, job_id=job_id, key="generator:dcgan:0", attempt=2) is None
            unit_crud.requeue_dead(session, job_id=job_id, alive=lambda unit: False)
            capped = unit_crud.claim_unit(session, job_id=job_id, key="generator:dcgan:0", host="b", pid=2)
            assert capped.outcome == "skip" and capped.reason == "attempt cap reached"
            assert unit_crud.stop_reason(session, job_id=job_id) == "unit generator:dcgan:0 failed"
            assert unit_crud.claim_unit(session, job_id=job_id, key="classifier:baseline-seed0", host="b",
                                        pid=2).reason == "another unit of the job failed"  # fmt: skip
    finally:
        with db.session() as session:
            session.execute(delete(Job).where(Job.id == job_id))
            session.commit()
