"""A verdict with power: does GenMix help, hurt, or is there no evidence either way, and how large an effect could
this study have seen?

For each GenMix arm (each generator; the fixed α = 0.3 arm and, with list-valued settings, the arm tuned on
validation) against the baseline, MixUp and the same generator alone:

- **Mean paired difference** in macro F1 over the pairs (seed, classifier replicate) both arms ran: same classifier
  seed, same data order, same test set; replicates of one seed are averaged first (one generator training).
- **Standard error** over seeds *and* test images, which are crossed: every seed is scored on the same images, so
  the test set's sampling error does not average out over seeds. The image part is a paired bootstrap over test
  images (each replicate one multiset of images, shared by every pair and both arms; macro F1 recomputed per
  replicate and pair from the stored per-image predictions, ``record["test_predictions"]`` and
  ``record["test_labels"]``); the seed part is the variance of the mean over seed units (generator seeds, their
  classifier seeds together; with one generator seed, its classifier seeds; with one pair, none). Both parts hold
  the seed × image interaction, estimated from the same bootstrap and subtracted once (see
  :func:`paired_bootstrap`; resampling seeds and images together would count it three times and make the
  intervals far too wide). The seed part is never below what the classifier seeds within the seed units imply
  (:func:`_within_floor`), so two generator seeds that happen to agree do not shrink the interval to the test
  images' part.
- **95 % interval** and **p-value** from t with Satterthwaite's degrees of freedom (few seeds: few degrees of
  freedom, wide intervals), the p-values **Holm**-adjusted over all comparisons of the run.
- **Minimum detectable effect** at 80 % power: ``(t_{1-α/(2m)} + t_{0.8}) · SE`` with ``SE`` the standard error
  above and ``m`` the number of comparisons (α/m is Holm's strictest step, so an effect this large would have
  been detected with at least 80 % probability whatever its rank).
- **Verdict**: "helps" / "hurts" when the Holm-adjusted p is below α = 0.05, else "no evidence of a difference
  larger than <MDE> points"; no verdict with fewer than :data:`MIN_SEED_UNITS` seed units. "one run" when each
  arm ran once: its interval covers the test images only, not training randomness (one classifier seed's luck
  moves macro F1 by several points). "too few seeds" with two units: their spread has one degree of freedom, and
  two units that agree by luck leave the interval on the test images alone (Satterthwaite's df in the hundreds),
  which the classifier-seed floor cannot catch when a unit has one pair or when the units are the classifier
  seeds of one generator training. Neither case claims a verdict or a detectable effect.

- **Plan** (:func:`plan_seed_units`): from the same variance parts, the seed units that would detect 2 points
  (:data:`PLAN_EFFECT`) at 80 % power, or that the test set's part alone (shared by every seed) keeps the MDE
  above it whatever the seeds.

Vectorised numpy (replicates in chunks, image weights as multinomial counts), seeded, and bounded in time: the
number of replicates drops from 2,000 (to no fewer than 500) when test images × pairs × classes is large.
Torch-free, so the API computes the same verdicts from stored run records.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import NormalDist
from typing import Any

import numpy as np

from models.selection import FILTERED, TUNED, study_records
from models.table import GENERATOR_LABELS, row_label, with_variant

ALPHA = 0.05
POWER = 0.8
REPLICATES = 2000
MIN_REPLICATES = 500
WORK_BUDGET = 2e9
"""Replicates × test images × pairs × classes above which fewer replicates are drawn."""
BOOTSTRAP_SEED = 20_250_101
CHUNK = 250
MIN_SEED_UNITS = 3
"""Seed units (generator seeds; with one generator seed, its classifier seeds) a helps / hurts / no-evidence
verdict needs."""
REFERENCES: tuple[tuple[str, bool], ...] = (("baseline", False), ("mixup", False), ("generative", True))
"""The references of every GenMix arm (arm, whether it is the same generator's)."""

Key = tuple[str, str | None, str | None]  # arm, generator, variant


# ---------------------------------------------------------------------------------------------- the numbers


def macro_f1_weighted(labels: np.ndarray, predictions: np.ndarray, weights: np.ndarray, num_classes: int) -> np.ndarray:
    """Macro F1 of each of P prediction rows under each of B weightings of the N test images.

    ``labels`` (N,), ``predictions`` (P, N) class indices, ``weights`` (B, N) image counts (a bootstrap multiset;
    all ones is the test set itself). Returns (B, P). Per-class F1 = 2·TP / (predicted + actual), 0 when both are 0
    (scikit-learn's ``zero_division=0`` over ``labels=range(K)``).
    """
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.atleast_2d(np.asarray(predictions, dtype=np.int64))
    pairs, n = predictions.shape
    # Counts are integers: small products in int32 (numpy's own loop, exact, no BLAS threads to wake), large ones
    # in float32 BLAS (exact below 2**24). Ratios in float64.
    dtype = np.int32 if n * pairs * num_classes <= 50_000 else np.float32
    weights = np.atleast_2d(np.asarray(weights)).astype(dtype, copy=False)
    k = np.arange(num_classes)
    predicted = predictions[:, :, None] == k  # (P, N, K)
    hits = predicted & (labels[None, :, None] == k)  # (P, N, K): predicted k and it is k
    flat = lambda a: a.transpose(1, 0, 2).reshape(n, pairs * num_classes).astype(dtype)  # noqa: E731
    actual = (weights @ (labels[:, None] == k).astype(dtype)).astype(np.float64)  # (B, K)
    pred_count = (weights @ flat(predicted)).reshape(len(weights), pairs, num_classes).astype(np.float64)
    tp = (weights @ flat(hits)).reshape(len(weights), pairs, num_classes).astype(np.float64)
    denominator = pred_count + actual[:, None, :]
    f1 = np.divide(2.0 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    return f1.mean(axis=2)


def replicate_count(images: int, pairs: int, classes: int, wanted: int = REPLICATES) -> int:
    """``wanted`` replicates, fewer (never below :data:`MIN_REPLICATES`) when one would cost too much."""
    affordable = int(WORK_BUDGET // max(1, images * pairs * classes))
    return max(min(wanted, MIN_REPLICATES), min(wanted, affordable))


def seed_level(generator_seeds: int, pairs: int) -> str:
    """What the seed part of the interval resamples: the generator seeds (two or more), else one generator seed's
    classifier seeds (two or more pairs), else nothing."""
    if generator_seeds >= 2:
        return "seeds"
    return "classifier seeds" if pairs >= 2 else "none"


def design_notice(generator_seeds: int, classifier_seeds: int, arms: Sequence[str] = ("genmix",)) -> str | None:
    """Said before a study starts when it has a GenMix arm and its design cannot reach a verdict (fewer than
    :data:`MIN_SEED_UNITS` seed units), with what would; None otherwise."""
    if "genmix" not in arms:
        return None
    level = seed_level(generator_seeds, generator_seeds * classifier_seeds)
    units = generator_seeds if level == "seeds" else classifier_seeds
    if units >= MIN_SEED_UNITS:
        return None
    design = f"{generator_seeds} seed{'s' if generator_seeds != 1 else ''} × {classifier_seeds} classifier seed"
    design += "s" if classifier_seeds != 1 else ""
    return (f"{design}: {units} seed unit{'s' if units != 1 else ''}, too few for a verdict on GenMix (it needs "
            f"{MIN_SEED_UNITS} or more: {MIN_SEED_UNITS} or more seeds, or one seed with {MIN_SEED_UNITS} or more "
            "classifier seeds); the table and intervals are still reported")  # fmt: skip


def paired_bootstrap(
    labels: np.ndarray,
    target: np.ndarray,
    reference: np.ndarray,
    clusters: Sequence[int],
    num_classes: int,
    replicates: int = REPLICATES,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, Any]:
    """The mean paired macro-F1 difference (target − reference) and its standard error over seeds and test images.

    ``target`` and ``reference`` are (P, N) test predictions of the P pairs, row p of both from the same classifier
    seed; ``clusters`` (P,) the seed of each pair (its generator training). With two or more clusters the seed
    level is the clusters (replicates of one seed averaged first); with one, its pairs; with one pair, none.

    The variance has a test-image part and a seed part, crossed: every seed is scored on the same images. The
    image part comes from a bootstrap over test images (``replicates`` multisets, each shared by all pairs and both
    arms; seeds held fixed); the seed part is the usual variance of a mean over the G seed units. Both contain the
    seed × image interaction (one seed's luck on particular images), so it is counted twice; it is estimated from
    the same bootstrap (how much the units' differences move against each other when the images are resampled)
    and subtracted once. (Resampling seeds and images together would count it three times: with seeds that
    disagree on many borderline images, intervals half as wide again as they should be.)

    Returns ``observed``, ``se``, ``df`` (Satterthwaite, for a t interval), the parts ``var_images``,
    ``var_seeds``, ``var_interaction``, the image-bootstrap ``draws`` of the mean, and what was ``resampled``.
    """
    labels = np.asarray(labels, dtype=np.int64)
    target, reference = np.atleast_2d(target), np.atleast_2d(reference)
    pairs, n = target.shape
    if reference.shape != target.shape or labels.shape != (n,):
        raise ValueError(f"predictions {target.shape} / {reference.shape} and labels {labels.shape} do not match")
    cluster_ids, cluster_of = np.unique(np.asarray(clusters), return_inverse=True)
    level = seed_level(len(cluster_ids), pairs)
    if level == "seeds":
        unit_of = cluster_of.reshape(-1)
    elif level == "classifier seeds":
        unit_of = np.arange(pairs)
    else:
        unit_of = np.zeros(pairs, dtype=np.int64)
    units = int(unit_of.max()) + 1
    member = np.zeros((pairs, units))
    member[np.arange(pairs), unit_of] = 1.0
    member /= member.sum(0, keepdims=True)  # (P, G): the mean over a unit's pairs

    def pair_diffs(weights: np.ndarray) -> np.ndarray:  # (b, P)
        t = macro_f1_weighted(labels, target, weights, num_classes)
        r = macro_f1_weighted(labels, reference, weights, num_classes)
        return t - r

    def unit_diffs(weights: np.ndarray) -> np.ndarray:  # (b, G)
        return pair_diffs(weights) @ member

    observed_pairs = pair_diffs(np.ones((1, n), dtype=np.int32))[0]
    observed_units = observed_pairs @ member
    observed = float(observed_units.mean())
    rng = np.random.default_rng(seed)
    means = np.empty(replicates)
    spread = np.empty((replicates, units))
    for start in range(0, replicates, CHUNK):
        size = min(CHUNK, replicates - start)
        draw = rng.integers(0, n, size=(size, n)) + (np.arange(size) * n)[:, None]
        image_weights = np.bincount(draw.ravel(), minlength=size * n).reshape(size, n)  # multinomial counts
        d = unit_diffs(image_weights)
        means[start : start + size] = d.mean(1)
        spread[start : start + size] = d - d.mean(1, keepdims=True)
    var_images = float(means.var(ddof=1)) if replicates > 1 else 0.0
    seed_df = float(units - 1)
    if units >= 2:
        var_seeds = float(observed_units.var(ddof=1)) / units
        floor, within_df = _within_floor(observed_pairs, unit_of, units)
        if floor > var_seeds:  # a few seed means that agree by luck: their spread cannot be below their pairs'
            var_seeds, seed_df = floor, within_df
        # E[var over images of (unit − mean of units)] = (1 − 1/G)·σ²_int/N, and each of the two parts holds σ²_int/(NG)
        var_interaction = float(spread.var(axis=0, ddof=1).mean()) / (units - 1) if replicates > 1 else 0.0
    else:
        var_seeds = var_interaction = 0.0
    variance = max(var_images + var_seeds - var_interaction, var_images)
    se = float(np.sqrt(variance))
    # Satterthwaite over the estimated parts, each with its own degrees of freedom: the seed part's estimate is
    # var_seeds (G − 1 df, or the floor's), not the net seed_part; taking the net part's square (smaller) gave
    # too many df and 9–12 % false verdicts at a nominal 5 % with 3–6 seeds whose training noise dominates.
    parts = [(var_images, max(1, n - 1))]
    if units >= 2:
        parts += [(var_seeds, seed_df), (var_interaction, (units - 1) * max(1, n - 1))]
    df = satterthwaite_df(variance, parts)
    return {
        "observed": observed,
        "se": se,
        "df": df,
        "var_images": var_images,
        "var_seeds": var_seeds,
        "var_interaction": var_interaction,
        "draws": means,
        "units": units,
        "resampled": level,
    }


def satterthwaite_df(variance: float, parts: Sequence[tuple[float, float]]) -> float:
    """Satterthwaite's degrees of freedom of ``variance``, a sum of estimated parts (estimate, its df); infinite
    when every part is 0."""
    denominator = sum(part**2 / df for part, df in parts)
    return float(variance**2 / denominator) if denominator > 0 else float("inf")


def _within_floor(pair_diffs: np.ndarray, unit_of: np.ndarray, units: int) -> tuple[float, float]:
    """A lower bound on the variance of the mean over seed units from the spread of classifier seeds within them,
    and its degrees of freedom: each unit's mean has at least the variance of its k classifier seeds' mean
    (s²_within / k, s²_within pooled over the units). With two or three generator seeds the variance of their means
    has one or two degrees of freedom and can come out near zero by chance (two seeds agreeing to a point while
    their classifier seeds differ by ten); the interval then rests on the test images alone and claims too much.
    (0, 0) when no unit has two pairs."""
    counts = np.bincount(unit_of, minlength=units)
    within_df = int((counts - 1).clip(min=0).sum())
    if within_df == 0:
        return 0.0, 0.0
    centred = pair_diffs - (np.bincount(unit_of, weights=pair_diffs, minlength=units) / counts)[unit_of]
    pooled = float((centred**2).sum()) / within_df
    return pooled * float((1.0 / counts).sum()) / units**2, float(within_df)


def t_quantile(q: float, df: float) -> float:
    if not np.isfinite(df) or df > 1e6:
        return NormalDist().inv_cdf(q)
    from scipy import stats

    return float(stats.t.ppf(q, df))


def t_p_value(diff: float, se: float, df: float) -> float:
    """Two-sided p of "no difference" for ``diff`` with standard error ``se`` and ``df`` degrees of freedom."""
    if se <= 0:
        return 1.0 if diff == 0 else 0.0
    if not np.isfinite(df) or df > 1e6:
        return 2.0 * (1.0 - NormalDist().cdf(abs(diff) / se))
    from scipy import stats

    return float(2.0 * stats.t.sf(abs(diff) / se, df))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment: adjusted p_(i) = max over j ≤ i of min(1, (m − j + 1) · p_(j))."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def mde(se: float, comparisons: int, df: float = float("inf"), alpha: float = ALPHA, power: float = POWER) -> float:
    """The effect detected with probability ``power`` at level α/m (two-sided): (t_{1-α/2m} + t_power) · SE."""
    return (t_quantile(1 - alpha / (2 * max(1, comparisons)), df) + t_quantile(power, df)) * se


# ---------------------------------------------------------------------------------------------- records


PLAN_EFFECT = 0.02
"""The difference a plan is made for: 2 macro-F1 points, the size published for augmentation on pretrained
backbones (1–3 points)."""
MAX_PLAN_UNITS = 1000


def planned_mde(test_part: float, per_unit: float, images: int, comparisons: int, units: int) -> float:
    """The MDE of the same design with ``units`` seed units: (t_{1-α/2m} + t_0.8) · √(test part + per-unit / G),
    Satterthwaite's df at G (infinitely many units: the test part alone, ``units`` 0)."""
    seed_part = per_unit / units if units else 0.0
    variance = test_part + seed_part
    parts = [(test_part, max(1, images - 1))] + ([(seed_part, units - 1)] if units > 1 else [])
    return mde(float(np.sqrt(variance)), comparisons, satterthwaite_df(variance, parts))


def plan_seed_units(
    var_images: float,
    var_seeds: float,
    var_interaction: float,
    units: int,
    images: int,
    comparisons: int,
    effect: float = PLAN_EFFECT,
) -> dict[str, Any]:
    """How many seed units this design would need to detect ``effect`` at 80 % power, from its variance parts.

    The test set's part (``var_images`` less the interaction) is shared by every seed and does not shrink with
    more of them; the seed part (``var_seeds``, interaction included) shrinks as 1/G (:func:`planned_mde`). A
    rough estimate when the run has few seeds (their spread has G − 1 degrees of freedom). Returns
    ``seed_units`` (None when the test part alone keeps the MDE above ``effect``: more test images, not more
    seeds, are the answer; or more than :data:`MAX_PLAN_UNITS`) and ``test_floor_mde``, the MDE with unlimited
    seeds on this test set.
    """  # fmt: skip
    test_part = max(var_images - var_interaction, 0.0)
    per_unit = units * var_seeds
    floor = planned_mde(test_part, per_unit, images, comparisons, 0)
    found = None
    if floor < effect:
        low, high = MIN_SEED_UNITS, MAX_PLAN_UNITS  # the MDE falls as G grows: bisect for the first G
        if planned_mde(test_part, per_unit, images, comparisons, high) <= effect:
            while low < high:
                middle = (low + high) // 2
                if planned_mde(test_part, per_unit, images, comparisons, middle) <= effect:
                    high = middle
                else:
                    low = middle + 1
            found = low
    return {"effect": effect, "seed_units": found, "test_floor_mde": floor, "from_units": units}


def plan_text(c: dict[str, Any]) -> str | None:
    """The plan in words, for one comparison (None when the design has no seed spread to plan from)."""
    plan = c.get("plan")
    if not plan:
        return None
    effect = f"{plan['effect'] * 100:g} points"
    if plan["seed_units"] is None:
        return (f"{c['target']} vs {c['reference']}: {effect} is out of reach on these {c['test_images']} test images "
                f"(with unlimited seeds the MDE stays {plan['test_floor_mde'] * 100:.1f} points): a larger test set "
                "is needed")  # fmt: skip
    if plan["seed_units"] <= c["units"] and c["verdict"] not in (ONE_RUN, FEW_SEEDS):
        return None  # the design already has the power
    unit = _unit_word(c)
    return (f"{c['target']} vs {c['reference']}: about {plan['seed_units']} {unit} to see {effect} at 80 % power "
            f"(estimated from the spread of these {plan['from_units']} {unit})")  # fmt: skip


def interval_cover(verdicts: dict[str, Any]) -> str:
    """What the run's intervals cover, each distinct spread once (the comparisons of one design share it)."""
    return "; ".join(dict.fromkeys(c["spread"] for c in verdicts.get("comparisons") or []))


def verdict_lines(verdicts: dict[str, Any]) -> list[str]:
    """What a reader sees first, in the CLI and the demo: one verdict per comparison, then each plan."""
    return [*(verdicts.get("lines") or []), *(f"plan: {plan}" for plan in verdicts.get("plans") or [])]


def _key(record: dict[str, Any]) -> Key:
    return record["arm"], record.get("generator"), record.get("variant")


def comparison_label(key: Key, ratio: float) -> str:
    arm, generator, variant = key
    if arm == "generative" and generator is not None:
        return with_variant(f"{GENERATOR_LABELS.get(generator, generator)} alone", variant)
    return row_label(arm, generator, ratio, variant)


def planned_comparisons(
    records: list[dict[str, Any]], reference_arms: tuple[tuple[str, bool], ...] = REFERENCES
) -> list[tuple[Key, Key]]:
    """(GenMix arm, reference) for every GenMix arm of the records and every reference they hold. A filtered GenMix
    arm's generator alone is the filtered one where the records hold it, and the unfiltered GenMix arm is one more
    reference of it: does the filter help?"""
    keys = list(dict.fromkeys(_key(r) for r in records))
    present = set(keys)
    out = []
    for target in keys:
        arm_, generator, variant = target
        if arm_ != "genmix":
            continue
        references = [(arm, generator if same_generator else None, None) for arm, same_generator in reference_arms]
        if variant == FILTERED:
            references = [(arm, g, FILTERED) if g and (arm, g, FILTERED) in present else (arm, g, v)
                          for arm, g, v in references]  # fmt: skip
            references.append(("genmix", generator, None))
        out += [(target, reference) for reference in references if reference in present]
    return out


def _spread(seeds: int, per_seed: float, level: str, images: int) -> str:
    """What the interval covers, in words (the report and the web page quote it)."""
    k = f"{per_seed:g} classifier seed{'s' if per_seed != 1 else ''}"
    if level == "none":
        return f"one seed: the interval covers sampling of the {images} test images only, not training randomness"
    if level == "classifier seeds":
        return (f"one generator seed with {k}: the interval covers classifier seeds and the {images} test images, "
                "for that one generator training")  # fmt: skip
    few = ""
    if seeds <= 3:
        few = f"; with {seeds} seeds their spread has {seeds - 1} degree{'s' if seeds > 2 else ''} of freedom: wide"
    return (f"{seeds} seeds × {k} each: the interval covers generator trainings, classifier seeds and the "
            f"{images} test images{few}")  # fmt: skip


def compare(
    records: list[dict[str, Any]], target: Key, reference: Key, replicates: int = REPLICATES, seed: int = BOOTSTRAP_SEED
) -> dict[str, Any]:
    """One comparison's numbers (before the Holm adjustment), or ``{"skipped": reason}``."""
    by = {t: {} for t in (target, reference)}
    for record in records:
        if _key(record) in by:
            by[_key(record)][(int(record["seed"]), int(record.get("replicate") or 0))] = record
    pairs = sorted(set(by[target]) & set(by[reference]))
    if not pairs:
        return {"skipped": "no seed that both arms ran"}
    chosen = [(by[target][p], by[reference][p]) for p in pairs]
    if any("test_predictions" not in r or "test_labels" not in r for pair in chosen for r in pair):
        return {"skipped": "records without per-image test predictions (made before verdicts existed)"}
    labels = np.asarray(chosen[0][0]["test_labels"], dtype=np.int64)
    if any(not np.array_equal(np.asarray(r["test_labels"]), labels) for pair in chosen for r in pair):
        return {"skipped": "the arms were scored on different test sets"}
    num_classes = len(chosen[0][0]["metrics"]["per_class"])
    t = np.asarray([a["test_predictions"] for a, _ in chosen], dtype=np.int64)
    r = np.asarray([b["test_predictions"] for _, b in chosen], dtype=np.int64)
    clusters = [p[0] for p in pairs]
    b = replicate_count(len(labels), len(pairs), num_classes, replicates)
    boot = paired_bootstrap(labels, t, r, clusters, num_classes, b, seed)
    diff, se, df = boot["observed"], boot["se"], boot["df"]
    half = t_quantile(1 - ALPHA / 2, df) * se
    seeds = len(set(clusters))
    return {
        "pairs": len(pairs),
        "seeds": seeds,
        "classifier_seeds_per_seed": len(pairs) / seeds,
        "test_images": int(len(labels)),
        "mean_diff": diff,
        "ci_low": max(-1.0, diff - half),  # a difference of two F1 scores lies in [-1, 1]
        "ci_high": min(1.0, diff + half),
        "se": se,
        "df": df if np.isfinite(df) else None,
        "var_images": boot["var_images"],
        "var_seeds": boot["var_seeds"],
        "var_interaction": boot["var_interaction"],
        "p_value": t_p_value(diff, se, df),
        "replicates": b,
        "units": boot["units"],
        "resampled": boot["resampled"],
        "spread": _spread(seeds, len(pairs) / seeds, boot["resampled"], len(labels)),
    }


ONE_RUN = "one run"
"""The verdict of a comparison whose arms ran once each: none (see the module docstring)."""
FEW_SEEDS = "too few seeds"
"""The verdict of a comparison with fewer than :data:`MIN_SEED_UNITS` seed units (but more than one run): none."""


def _unit_word(c: dict[str, Any]) -> str:
    return "classifier seeds" if c.get("resampled") == "classifier seeds" else "seeds"


def verdict_of(c: dict[str, Any], p_holm: float) -> str:
    """helps / hurts / no evidence from the Holm-adjusted p, once the design has the seed units for a verdict."""
    if c["resampled"] == "none":  # one pair: training randomness is not in the interval
        return ONE_RUN
    if c["units"] < MIN_SEED_UNITS:
        return FEW_SEEDS
    return ("helps" if c["mean_diff"] > 0 else "hurts") if p_holm < ALPHA else "no evidence"


def verdict_line(c: dict[str, Any]) -> str:
    """The line a lab reads first, in macro-F1 points."""
    numbers = f"{c['mean_diff'] * 100:+.1f} macro F1 [{c['ci_low'] * 100:.1f}, {c['ci_high'] * 100:.1f}]"
    if c["verdict"] == ONE_RUN:
        return (f"{c['target']} vs {c['reference']}: one run each, no verdict ({numbers} over the test images only; "
                "a verdict needs 2 or more seeds)")  # fmt: skip
    if c["verdict"] == FEW_SEEDS:
        unit = _unit_word(c)
        return (f"{c['target']} vs {c['reference']}: {c['units']} {unit}, too few for a verdict ({numbers}; "
                f"a verdict needs {MIN_SEED_UNITS} or more {unit})")  # fmt: skip
    if c["verdict"] in ("helps", "hurts"):
        return f"{c['target']} {c['verdict']} vs {c['reference']}: {numbers}"
    if c["se"] == 0:
        return f"{c['target']} vs {c['reference']}: no difference (identical test predictions)"
    if c["mde"] >= 1.0:  # with two or three seeds and a large spread between them, t's few degrees of freedom
        return (f"{c['target']} vs {c['reference']}: no evidence either way; {c['seeds']} seeds cannot detect even "
                f"the largest difference here, more seeds can ({numbers})")  # fmt: skip
    bound = f"{c['mde'] * 100:.1f}"
    return f"{c['target']} vs {c['reference']}: no evidence of a difference larger than {bound} points ({numbers})"


def verdicts(
    records: list[dict[str, Any]], ratio: float = 0.5, replicates: int = REPLICATES, seed: int = BOOTSTRAP_SEED
) -> dict[str, Any]:
    """Every comparison of a run, Holm-adjusted, with its verdict line; from raw run records."""
    records = study_records(records)
    done, skipped = [], []
    for index, (target, reference) in enumerate(planned_comparisons(records)):
        names = {"target": comparison_label(target, ratio), "reference": comparison_label(reference, ratio)}
        result = compare(records, target, reference, replicates, seed + index)
        keys = {"target_key": dict(zip(("arm", "generator", "variant"), target, strict=True)),
                "reference_key": dict(zip(("arm", "generator", "variant"), reference, strict=True))}  # fmt: skip
        if "skipped" in result:
            skipped.append({**names, **keys, "reason": result["skipped"]})
        else:
            done.append({**names, **keys, **result})
    adjusted = holm([c["p_value"] for c in done])
    for c, p in zip(done, adjusted, strict=True):
        c["p_holm"] = p
        c["mde"] = mde(c["se"], len(done), c["df"] if c["df"] is not None else float("inf"))
        c["verdict"] = verdict_of(c, p)
        c["plan"] = None
        if c["resampled"] != "none":  # one pair has no seed spread to plan from
            parts = (c["var_images"], c["var_seeds"], c["var_interaction"], c["units"], c["test_images"], len(done))
            c["plan"] = plan_seed_units(*parts)
        c["line"] = verdict_line(c)
    return {
        "metric": "macro_f1",
        "alpha": ALPHA,
        "power": POWER,
        "correction": "holm",
        "comparisons": done,
        "lines": [c["line"] for c in done],
        "plans": [text for c in done if (text := plan_text(c)) is not None],
        "skipped": skipped,
        "method": METHOD,
        "tuned": any(r.get("variant") == TUNED for r in records),
    }


METHOD = (
    "Paired by seed and classifier seed (classifier seeds of one seed averaged first). Standard error over test "
    "images (a bootstrap of the images shared by every pair and both arms) and seeds (the variance of the mean over "
    "seeds, at least what the classifier seeds within the seeds imply), less the seed × image interaction that "
    "both parts count; 95 % t interval with Satterthwaite's degrees of freedom; p-values from the same t, "
    "Holm-adjusted over all comparisons; the minimum detectable effect is (t_{1-α/2m} + t_0.8) × SE. "
    f"A verdict needs {MIN_SEED_UNITS} or more seed units (generator seeds; with one generator seed, its classifier "
    "seeds); 'helps' / 'hurts' need a Holm-adjusted p below 0.05."
)
