"""GenMix settings chosen on validation: the choice reads validation scores only, the table shows the fixed arm and
the tuned one (never the grid's other combinations), and list-valued settings are validated at the door."""

from __future__ import annotations

import copy

import pytest
from pydantic import ValidationError

from models.layout import run_id, variant_tag
from models.selection import selections, study_records
from models.spec import ExperimentSpec, classifier_seed
from models.table import summary_rows

FIXED = {"alpha": 0.3, "synthetic_ratio": 0.5, "mix_prob": 1.0, "partner_pool": "real+synthetic"}


def _record(arm: str, seed: int, val: float, test: float, alpha: float | None = None, candidate: bool = False) -> dict:
    per_class = [{"class": c, "sensitivity": test, "specificity": test} for c in ("a", "b")]
    metrics = {"accuracy": test, "macro_f1": test, "balanced_accuracy": test, "auc": None, "per_class": per_class}
    record = {"arm": arm, "generator": "dcgan" if arm == "genmix" else None, "seed": seed, "replicate": 0,
              "metrics": metrics, "val_macro_f1": val, "test_predictions": [0, 1], "test_labels": [0, 1]}  # fmt: skip
    if arm == "genmix":
        settings = {**FIXED, "alpha": alpha}
        fixed = alpha == FIXED["alpha"]
        record |= {"genmix_settings": settings, "fixed": fixed, "candidate": candidate}
        record["run_id"] = run_id("genmix", "dcgan", seed, 0, None if fixed else variant_tag(settings, FIXED))
    else:
        record["run_id"] = run_id(arm, None, seed)
    return record


# seed 0: α 1 is best on validation (but worst on test); seed 1: α 0.1 is best on validation
RECORDS = [
    _record("baseline", 0, 0.60, 0.60),
    _record("genmix", 0, 0.62, 0.70, alpha=0.3),  # the fixed (paper) arm, not in the grid [0.1, 1]
    _record("genmix", 0, 0.61, 0.90, alpha=0.1, candidate=True),
    _record("genmix", 0, 0.70, 0.50, alpha=1.0, candidate=True),
    _record("baseline", 1, 0.58, 0.58),
    _record("genmix", 1, 0.60, 0.66, alpha=0.3),
    _record("genmix", 1, 0.64, 0.62, alpha=0.1, candidate=True),
    _record("genmix", 1, 0.64, 0.99, alpha=1.0, candidate=True),  # a tie on validation: the earlier one wins
]


def test_the_choice_is_the_best_validation_score_per_seed() -> None:
    chosen = {s["seed"]: s["chosen"]["alpha"] for s in selections(RECORDS)}
    assert chosen == {0: 1.0, 1: 0.1}
    rows = summary_rows(RECORDS, ["a", "b"], 0.5)
    assert [r["label"] for r in rows] == ["Baseline (Real)", "GenMix (DCGAN)", "GenMix (DCGAN), tuned on val"]
    tuned = rows[2]
    assert tuned["variant"] == "tuned" and tuned["macro_f1"]["mean"] == pytest.approx((0.50 + 0.62) / 2)
    assert rows[1]["macro_f1"]["mean"] == pytest.approx((0.70 + 0.66) / 2)  # the paper's α = 0.3, as run


def test_the_choice_never_reads_the_test_split() -> None:
    corrupted = copy.deepcopy(RECORDS)
    for i, record in enumerate(corrupted):
        record["metrics"] = {**record["metrics"], "macro_f1": 1.0 - record["metrics"]["macro_f1"], "accuracy": 0.0}
        record["test_predictions"] = [i % 2, 1 - i % 2]
        record["test_labels"] = [1, 1]
    assert selections(corrupted) == selections(RECORDS)
    before = [r["run_id"] for r in study_records(RECORDS)]
    assert [r["run_id"] for r in study_records(corrupted)] == before
    moved = copy.deepcopy(RECORDS)
    moved[3]["val_macro_f1"] = 0.0  # but a validation score moves the choice
    assert {s["seed"]: s["chosen"]["alpha"] for s in selections(moved)}[0] == 0.1


def test_a_spec_without_lists_plans_the_runs_it_always_did() -> None:
    spec = ExperimentSpec(seeds=[0, 1], generators=["dcgan"])
    runs = spec.planned_runs()
    assert not spec.has_grid and [(r.arm, r.seed, r.replicate) for r in runs][:3] == [
        ("baseline", 0, 0), ("mixup", 0, 0), ("augmix", 0, 0)]  # fmt: skip
    assert len(runs) == 2 * 5 and all(r.classifier_seed == r.seed and r.fixed and not r.candidate for r in runs)
    assert {run_id(r.arm, r.generator, r.seed, r.replicate) for r in runs} >= {"baseline-seed0", "genmix-dcgan-seed1"}


def test_lists_and_classifier_seeds_plan_paired_runs() -> None:
    spec = ExperimentSpec(arms=["baseline", "genmix"], alpha=[0.1, 0.3], mix_prob=[0.5, 1.0],
                          seeds=[3], classifier_seeds_per_generator=2)  # fmt: skip
    runs = spec.planned_runs()
    genmix = [r for r in runs if r.arm == "genmix" and r.replicate == 1]
    assert [(r.genmix["alpha"], r.genmix["mix_prob"], r.fixed, r.candidate) for r in genmix] == [
        (0.3, 1.0, True, True), (0.1, 0.5, False, True), (0.1, 1.0, False, True), (0.3, 0.5, False, True)]  # fmt: skip
    assert {r.classifier_seed for r in runs if r.replicate == 1} == {classifier_seed(3, 1)} != {3}
    tags = {variant_tag(r.genmix, spec.fixed_genmix()) for r in genmix}
    assert tags == {None, "a0p1-m0p5", "a0p1", "m0p5"}
    assert run_id("genmix", "dcgan", 3, 1, "a0p1") == "genmix-dcgan-seed3-c1-a0p1"
    assert ExperimentSpec(alpha=[0.7]).alpha == 0.7  # a one-item list is a single value


@pytest.mark.parametrize(
    "change, words",
    [
        ({"alpha": [0.1, 0.1]}, ["alpha", "repeat"]),
        ({"alpha": [0.1, 0]}, ["alpha", "greater than 0"]),
        ({"mix_prob": [0.5, 1.5]}, ["mix_prob", "less than or equal to 1"]),
        ({"synthetic_ratio": [0.5, 11]}, ["synthetic_ratio"]),
        ({"partner_pool": ["synthetic", "nearby"]}, ["partner_pool"]),
        ({"alpha": [0.1 * i for i in range(1, 10)]}, ["alpha", "at most 8"]),
        ({"alpha": [0.1, 0.2, 0.3, 0.4], "mix_prob": [0.1, 0.2, 0.3], "synthetic_ratio": [1, 2, 3]}, ["combinations"]),
        ({"classifier_seeds_per_generator": 0}, ["classifier_seeds_per_generator"]),
        ({"classifier_seeds_per_generator": 21}, ["classifier_seeds_per_generator"]),
        ({"filter_tau": 0}, ["filter_tau"]),
        ({"filter_tau": 1.0}, ["filter_tau"]),
        ({"filter_tau": 0.5, "arms": ["baseline", "mixup"]}, ["filter_tau", "generative"]),
        ({"seeds": list(range(50)), "classifier_seeds_per_generator": 20, "alpha": [0.1, 1]}, ["2000"]),
    ],
)
def test_list_settings_and_new_fields_are_refused_out_of_bounds(change: dict, words: list[str]) -> None:
    with pytest.raises(ValidationError) as caught:
        ExperimentSpec(**change)
    message = str(caught.value)
    assert all(word in message for word in words), message
