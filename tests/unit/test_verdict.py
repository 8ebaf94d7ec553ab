"""The verdicts on constructed run records: intervals cover a known effect, a zero effect reads "no evidence",
Holm adjusts in the right order, and the numbers agree with scikit-learn's macro F1."""

from __future__ import annotations

import re

import numpy as np
import pytest
from sklearn.metrics import f1_score

from models.verdict import (
    design_notice,
    holm,
    macro_f1_weighted,
    mde,
    paired_bootstrap,
    planned_mde,
    verdict_line,
    verdicts,
)

PREVALENCE = np.array([0.27, 0.73])  # BreastMNIST-like: a minority class of about a quarter
BASE_ERROR = np.array([0.45, 0.12])  # the reference's error rate per class
HELPS = np.array([-0.10, 0.0])  # the target's change of it: fewer minority errors
SEED_SD, ARM_SD, SHARE = 0.04, 0.02, 0.6
TEST_IMAGES, SEEDS, STUDIES = 156, 8, 50


def _population_f1(errors: np.ndarray) -> np.ndarray:
    """Binary macro F1 of classifiers with per-class error rates ``errors`` (..., 2) on the whole population."""
    p0, p1 = PREVALENCE
    e0, e1 = errors[..., 0], errors[..., 1]
    f1_0 = 2 * p0 * (1 - e0) / (2 * p0 * (1 - e0) + p0 * e0 + p1 * e1)
    f1_1 = 2 * p1 * (1 - e1) / (2 * p1 * (1 - e1) + p1 * e1 + p0 * e0)
    return (f1_0 + f1_1) / 2


def _errors(
    rng: np.random.Generator, seeds: int, effect: np.ndarray, arm_sd: float = ARM_SD
) -> tuple[np.ndarray, np.ndarray]:
    """Per-seed error rates of target and reference: a seed effect both share, and each arm's own (training
    noise: ``arm_sd``)."""
    shared = rng.normal(0, SEED_SD, (seeds, 1))
    reference = np.clip(BASE_ERROR + shared + rng.normal(0, arm_sd, (seeds, 2)), 0.01, 0.99)
    target = np.clip(BASE_ERROR + effect + shared + rng.normal(0, arm_sd, (seeds, 2)), 0.01, 0.99)
    return target, reference


def _truth(effect: np.ndarray) -> float:
    """The expected macro-F1 difference over new seeds and new test sets (the population's)."""
    target, reference = _errors(np.random.default_rng(1), 200_000, effect)
    return float(_population_f1(target).mean() - _population_f1(reference).mean())


def _record(arm: str, generator: str | None, seed: int, labels: np.ndarray, predictions: np.ndarray) -> dict:
    per_class = [{"class": name} for name in ("malignant", "benign")]
    metrics = {"per_class": per_class}  # the verdicts read the predictions, and the number of classes from here
    return {"arm": arm, "generator": generator, "seed": seed, "replicate": 0, "metrics": metrics,
            "test_labels": labels.tolist(), "test_predictions": predictions.tolist()}  # fmt: skip


def _study(
    rng: np.random.Generator, effect: np.ndarray, seeds: int = SEEDS, arm_sd: float = ARM_SD, images: int = TEST_IMAGES
) -> list[dict]:
    """A new test set of ``images`` and ``seeds`` paired runs of baseline and GenMix: hard images are hard for every
    run (a shared difficulty), and each run also errs on images of its own."""
    labels = (rng.random(images) < PREVALENCE[1]).astype(np.int64)
    difficulty = rng.random(images)
    target, reference = _errors(rng, seeds, effect, arm_sd)
    records = []
    for seed in range(seeds):
        for arm, generator, errors in (("baseline", None, reference), ("genmix", "dcgan", target)):
            draw = np.where(rng.random(images) < SHARE, difficulty, rng.random(images))
            wrong = draw < errors[seed, labels]
            records.append(_record(arm, generator, seed, labels, np.where(wrong, 1 - labels, labels)))
    return records


def test_weighted_macro_f1_is_scikit_learns() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 60)
    predictions = rng.integers(0, 3, (4, 60))
    predictions[2] = 0  # classes never predicted count as F1 = 0
    index = rng.integers(0, 60, 60)  # a bootstrap multiset, as counts
    weights = np.stack([np.ones(60), np.bincount(index, minlength=60)])
    got = macro_f1_weighted(labels, predictions, weights, 3)
    for p in range(4):
        for b, (y, pred) in enumerate([(labels, predictions[p]), (labels[index], predictions[p][index])]):
            expected = f1_score(y, pred, labels=[0, 1, 2], average="macro", zero_division=0)
            assert got[b, p] == pytest.approx(expected, abs=1e-12)


def test_holm_adjusts_in_the_order_of_the_p_values() -> None:
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    adjusted = holm([0.2, 0.001, 0.02])
    assert adjusted == pytest.approx([0.2, 0.003, 0.04])
    assert holm([0.6, 0.7]) == [1.0, 1.0]  # capped at 1, never below the unadjusted p


def test_interval_covers_a_known_effect_in_most_studies() -> None:
    truth = _truth(HELPS)
    assert 0.03 < truth < 0.06  # a 3–6 point gain: the size labs hope to see
    rng = np.random.default_rng(7)
    covered, helps = 0, 0
    for index in range(STUDIES):
        records = _study(rng, HELPS)
        (comparison,) = verdicts(records, replicates=1000)["comparisons"]
        covered += comparison["ci_low"] <= truth <= comparison["ci_high"]
        helps += comparison["verdict"] == "helps"
        if index == 0:  # the mean paired difference is the mean of scikit-learn's per-seed differences
            f1 = [f1_score(r["test_labels"], r["test_predictions"], average="macro") for r in records]
            assert comparison["mean_diff"] == pytest.approx(np.mean(np.subtract(f1[1::2], f1[::2])), abs=1e-12)
    assert covered >= 0.86 * STUDIES, f"95 % intervals covered the true effect in {covered} of {STUDIES} studies"
    assert helps >= 5  # 8 seeds on 156 images see a ~4-point effect now and then, not always


def test_zero_effect_reads_no_evidence() -> None:
    rng = np.random.default_rng(11)
    lines = []
    for _ in range(STUDIES):
        (comparison,) = verdicts(_study(rng, np.zeros(2)), replicates=1000)["comparisons"]
        lines.append(comparison["line"])
    no_evidence = [line for line in lines if "no evidence of a difference larger than" in line]
    assert len(no_evidence) >= 0.88 * STUDIES, lines  # nominally 95 %; 45 of these 50 (93 % of 300 such studies)
    assert re.fullmatch(
        r"GenMix \(DCGAN\) vs Baseline \(Real\): no evidence of a difference larger than \d+\.\d points "
        r"\([+-]\d+\.\d macro F1 \[-?\d+\.\d, -?\d+\.\d\]\)",
        no_evidence[0],
    ), no_evidence[0]


def test_a_large_effect_helps_and_its_line_reads_first() -> None:
    records = _study(np.random.default_rng(3), np.array([-0.3, -0.05]), seeds=10)
    result = verdicts(records)
    (comparison,) = result["comparisons"]
    assert comparison["verdict"] == "helps" and comparison["p_holm"] < 0.05
    assert re.fullmatch(r"GenMix \(DCGAN\) helps vs Baseline \(Real\): \+\d+\.\d macro F1 \[\d+\.\d, \d+\.\d\]",
                        comparison["line"]), comparison["line"]  # fmt: skip
    assert result["lines"] == [comparison["line"]]
    flipped = [{**r, "arm": "genmix" if r["arm"] == "baseline" else "baseline",
                "generator": None if r["arm"] == "genmix" else "dcgan"} for r in records]  # fmt: skip
    (hurts,) = verdicts(flipped)["comparisons"]
    assert hurts["verdict"] == "hurts" and hurts["line"].startswith("GenMix (DCGAN) hurts vs Baseline (Real): -")


def test_one_run_per_arm_gives_no_verdict_however_large_the_difference() -> None:
    """One seed, one classifier seed: the interval covers the test images only, so even a 30-point difference on
    them is not a verdict on GenMix (another classifier seed could reverse it)."""
    records = [r for r in _study(np.random.default_rng(3), np.array([-0.3, -0.05]), seeds=10) if r["seed"] == 0]
    (comparison,) = verdicts(records)["comparisons"]
    assert comparison["pairs"] == 1 and comparison["resampled"] == "none"
    assert comparison["ci_low"] > 0  # the test images alone would have said "helps"
    assert comparison["verdict"] == "one run"
    assert re.fullmatch(r"GenMix \(DCGAN\) vs Baseline \(Real\): one run each, no verdict \(\+\d+\.\d macro F1 "
                        r"\[\d+\.\d, \d+\.\d\] over the test images only; a verdict needs 2 or more seeds\)",
                        comparison["line"]), comparison["line"]  # fmt: skip


def test_few_seeds_with_large_training_noise_keep_false_verdicts_near_five_percent() -> None:
    """Zero effect, 3 or 6 seeds whose training noise is larger than the test images' (a classifier seed moving
    macro F1 by several points, as on BreastMNIST): at most about 5 % of studies may read helps or hurts. With
    Satterthwaite's df taken from the net seed part instead of its estimate, 10 % did."""
    rng = np.random.default_rng(21)
    false, studies = 0, 0
    for seeds in (3, 6):
        for _ in range(300):
            records = _study(rng, np.zeros(2), seeds=seeds, arm_sd=0.08)
            (comparison,) = verdicts(records, replicates=300)["comparisons"]
            false += comparison["verdict"] in ("helps", "hurts")
            studies += 1
    assert false <= 0.075 * studies, f"{false} of {studies} studies with no effect read helps or hurts"


@pytest.mark.parametrize("design", ["two generator seeds", "one generator seed, two classifier seeds"])
def test_two_seed_units_give_no_verdict_however_large_the_difference(design: str) -> None:
    """Two seed units: their spread has one degree of freedom, and where the two agree by luck (here: the same
    runs twice, so they agree exactly) the interval rests on the test images alone and would read "helps"."""
    runs = [r for r in _study(np.random.default_rng(3), np.array([-0.3, -0.05]), seeds=10) if r["seed"] == 0]
    if design == "two generator seeds":
        records = runs + [{**r, "seed": 1} for r in runs]
    else:
        records = runs + [{**r, "replicate": 1} for r in runs]
    (comparison,) = verdicts(records)["comparisons"]
    unit = "seeds" if design == "two generator seeds" else "classifier seeds"
    assert comparison["units"] == 2 and comparison["resampled"] == unit
    assert comparison["ci_low"] > 0 and comparison["p_holm"] < 0.05  # the p-value alone would have said "helps"
    assert comparison["verdict"] == "too few seeds"
    assert re.fullmatch(rf"GenMix \(DCGAN\) vs Baseline \(Real\): 2 {unit}, too few for a verdict \(\+\d+\.\d macro "
                        rf"F1 \[\d+\.\d, \d+\.\d\]; a verdict needs 3 or more {unit}\)",
                        comparison["line"]), comparison["line"]  # fmt: skip
    third = records + [{**r, "seed": 2} for r in runs] if design == "two generator seeds" else None
    if third is not None:  # a third seed unit is what a verdict needs
        assert verdicts(third)["comparisons"][0]["verdict"] == "helps"


@pytest.mark.parametrize("seeds, k", [(1, 1), (1, 2), (2, 1), (2, 5), (1, 3), (3, 1), (4, 2)])
def test_the_notice_before_a_study_agrees_with_the_verdict_after_it(seeds: int, k: int) -> None:
    """The CLI warns before training when the design cannot reach a verdict; the same rule decides after."""
    runs = _study(np.random.default_rng(seeds * 10 + k), np.array([-0.3, -0.05]), seeds=seeds * k)
    records = [{**r, "seed": r["seed"] // k, "replicate": r["seed"] % k} for r in runs]
    (comparison,) = verdicts(records, replicates=300)["comparisons"]
    notice = design_notice(seeds, k)
    assert (notice is None) == (comparison["verdict"] not in ("one run", "too few seeds")), (notice, comparison)
    if notice is not None:
        units = seeds if seeds >= 2 else k
        assert f": {units} seed unit" in notice and "needs 3 or more" in notice
    assert design_notice(seeds, k, ["baseline", "mixup"]) is None  # no GenMix arm, no verdict to warn about


def test_every_reference_is_compared_and_holm_counts_them_all() -> None:
    records = _study(np.random.default_rng(5), HELPS, seeds=4)
    extra = []
    for r in records:
        if r["arm"] == "baseline":
            extra.append({**r, "arm": "mixup"})
            extra.append({**r, "arm": "generative", "generator": "dcgan"})
    result = verdicts(records + extra)
    pairs = [(c["target"], c["reference"]) for c in result["comparisons"]]
    assert pairs == [("GenMix (DCGAN)", "Baseline (Real)"), ("GenMix (DCGAN)", "MixUp (Real)"),
                     ("GenMix (DCGAN)", "DCGAN alone")]  # fmt: skip
    p = [c["p_value"] for c in result["comparisons"]]
    assert [c["p_holm"] for c in result["comparisons"]] == pytest.approx(holm(p))
    # the same data three times: the same SE, so the MDE differs from one comparison's only by Holm's level
    assert result["comparisons"][0]["mde"] > mde(result["comparisons"][0]["se"], 1, result["comparisons"][0]["df"])


def test_classifier_seeds_of_one_generator_seed_are_resampled_together() -> None:
    # 12 runs per arm on one test set, read as 3 generator seeds × 4 classifier seeds
    runs = _study(np.random.default_rng(9), HELPS, 12)
    records = [{**r, "seed": r["seed"] // 4, "replicate": r["seed"] % 4} for r in runs]
    (comparison,) = verdicts(records)["comparisons"]
    assert (comparison["pairs"], comparison["seeds"], comparison["classifier_seeds_per_seed"]) == (12, 3, 4)
    assert "3 seeds × 4 classifier seeds" in comparison["spread"]
    one = [r for r in records if r["seed"] == 0]
    (single,) = verdicts(one)["comparisons"]
    assert single["resampled"] == "classifier seeds" and "one generator seed" in single["spread"]


def test_interaction_of_seeds_and_images_is_not_counted_twice() -> None:
    """Runs that disagree on many images: resampling seeds and images both would count that disagreement in both;
    the standard error subtracts it once, and stays at least the images' part."""
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 200)
    target = np.where(rng.random((6, 200)) < 0.2, 1 - labels, labels)
    reference = np.where(rng.random((6, 200)) < 0.2, 1 - labels, labels)
    boot = paired_bootstrap(labels, target, reference, list(range(6)), 2, replicates=1000)
    assert boot["var_interaction"] > 0
    naive = boot["var_images"] + boot["var_seeds"]
    assert boot["se"] ** 2 == pytest.approx(max(naive - boot["var_interaction"], boot["var_images"]))
    assert boot["se"] ** 2 < naive


def test_records_without_test_predictions_are_skipped_with_a_reason() -> None:
    records = _study(np.random.default_rng(1), HELPS, seeds=2)
    for r in records:
        del r["test_predictions"]
    result = verdicts(records)
    assert result["comparisons"] == [] and result["lines"] == []
    assert "per-image test predictions" in result["skipped"][0]["reason"]


def test_the_line_says_when_the_design_cannot_detect_anything() -> None:
    base = {"target": "GenMix (DCGAN)", "reference": "MixUp (Real)", "mean_diff": -0.146, "ci_low": -1.0,
            "ci_high": 1.0, "se": 0.4, "seeds": 2, "verdict": "no evidence"}  # fmt: skip
    assert verdict_line({**base, "mde": 13.2}) == (
        "GenMix (DCGAN) vs MixUp (Real): no evidence either way; 2 seeds cannot detect even the largest difference "
        "here, more seeds can (-14.6 macro F1 [-100.0, 100.0])"
    )
    assert "no evidence of a difference larger than 41.6 points" in verdict_line({**base, "mde": 0.416})
    assert verdict_line({**base, "se": 0.0, "mde": 0.0}).endswith("no difference (identical test predictions)")


def test_two_seeds_that_agree_by_luck_do_not_shrink_the_interval_below_their_classifier_seeds() -> None:
    """Two generator seeds whose means agree closely while their classifier seeds differ by ten points (the
    RetinaMNIST study's shape): the seed part is floored by the classifier seeds' spread, not taken as ~0."""
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, 400)
    reference = np.where(rng.random((4, 400)) < 0.3, 1 - labels, labels)
    target = reference.copy()
    for pair, fixed in zip(range(4), (2, 40, 40, 2), strict=True):  # pairs (seed 0: 1 and 10 points, seed 1 alike)
        wrong = np.flatnonzero(target[pair] != labels)[:fixed]
        target[pair, wrong] = labels[wrong]
    boot = paired_bootstrap(labels, target, reference, [0, 0, 1, 1], 2, replicates=500)
    per_pair = [f1_score(labels, target[p], average="macro") - f1_score(labels, reference[p], average="macro")
                for p in range(4)]  # fmt: skip
    seed_means = [np.mean(per_pair[:2]), np.mean(per_pair[2:])]
    assert abs(seed_means[0] - seed_means[1]) < 0.005 and abs(per_pair[0] - per_pair[1]) > 0.05
    assert boot["var_seeds"] > np.var(seed_means, ddof=1) / 2 * 10  # floored, not the lucky agreement
    assert boot["df"] < 10  # and the interval knows it rests on few classifier seeds


def test_the_plan_reproduces_the_runs_own_mde_and_names_the_test_set_when_it_is_the_limit() -> None:
    """Planned at the run's own number of seeds, the MDE is the run's; on 156 test images (BreastMNIST's) where the
    arms err on different images, 2 points are out of reach whatever the seeds (the test set's own part), and the
    plan says so."""
    trade = np.array([-0.2, 0.05])  # fewer minority errors, more majority ones: the arms differ image by image
    small = verdicts(_study(np.random.default_rng(0), trade, seeds=6, arm_sd=0.06), replicates=300)
    (c,) = small["comparisons"]
    test_part, per_unit = max(c["var_images"] - c["var_interaction"], 0.0), c["units"] * c["var_seeds"]
    assert planned_mde(test_part, per_unit, c["test_images"], 1, c["units"]) == pytest.approx(c["mde"], rel=0.02)
    assert c["plan"]["seed_units"] is None and c["plan"]["test_floor_mde"] > 0.02
    assert small["plans"] == [f"GenMix (DCGAN) vs Baseline (Real): 2 points is out of reach on these 156 test images "
                              f"(with unlimited seeds the MDE stays {c['plan']['test_floor_mde'] * 100:.1f} points): "
                              "a larger test set is needed"]  # fmt: skip
    one = [r for r in _study(np.random.default_rng(5), HELPS, seeds=6) if r["seed"] == 0]
    assert verdicts(one)["comparisons"][0]["plan"] is None and verdicts(one)["plans"] == []  # no spread to plan from


def test_a_plan_made_on_a_pilot_of_six_seeds_is_about_right() -> None:
    """Six pilot seeds on a 3,000-image test set plan the seeds for 2 points; studies of that many seeds then
    detect about 2 points (rough: the pilot's spread has 5 degrees of freedom)."""
    realised, planned = [], []
    for pilot in range(6):
        rng = np.random.default_rng(pilot)
        (c,) = verdicts(_study(rng, np.zeros(2), seeds=6, arm_sd=0.03, images=3000), replicates=300)["comparisons"]
        g = c["plan"]["seed_units"]
        planned.append(g)
        studies = [_study(rng, np.zeros(2), seeds=g, arm_sd=0.03, images=3000) for _ in range(8)]
        realised.append(np.median([verdicts(r, replicates=300)["comparisons"][0]["mde"] for r in studies]))
    assert all(6 < g < 100 for g in planned), planned
    assert 0.015 <= float(np.median(realised)) <= 0.027, (planned, realised)
