"""Paired comparisons between arms over seeds, and the Markdown report a study writes.

With a handful of seeds, the spread between seeds often exceeds the differences between arms, so every
comparison is paired by seed (same data order and initialisation), never a bare difference of means. The report
opens with the verdicts (:mod:`models.verdict`: a paired bootstrap over seeds and test images, Holm-adjusted,
with the minimum detectable effect), then Table 1, the GenMix settings chosen on validation, the synthetic
filter's counts, generator quality, and the per-seed paired t-test table.
"""

from __future__ import annotations

import statistics
from typing import Any

from scipy import stats

from models.datasets.options import describe_decode
from models.selection import selections, study_records
from models.spec import fixed_setting
from models.table import GENERATOR_LABELS, format_quality, format_table
from models.verdict import PLAN_EFFECT, comparison_label, interval_cover, planned_comparisons
from models.verdict import verdicts as compute_verdicts


def _by_seed(
    records: list[dict[str, Any]], arm: str, generator: str | None, variant: str | None = None, *, metric: str
) -> dict[tuple[int, int], float]:
    """``metric`` per (seed, classifier replicate) of one arm."""
    return {
        (r["seed"], int(r.get("replicate") or 0)): r["metrics"][metric]
        for r in records
        if r["arm"] == arm
        and r.get("generator") == generator
        and r.get("variant") == variant
        and r["metrics"][metric] is not None
    }


def paired_comparison(
    records: list[dict[str, Any]],
    target: tuple[str, str | None] | tuple[str, str | None, str | None],
    reference: tuple[str, str | None] | tuple[str, str | None, str | None],
    metric: str = "macro_f1",
) -> dict[str, Any] | None:
    """target − reference on ``metric`` over the (seed, classifier seed) pairs both have: mean, std, wins, paired
    t-test p. ``target`` / ``reference`` are (arm, generator) or (arm, generator, variant)."""
    a, b = _by_seed(records, *target, metric=metric), _by_seed(records, *reference, metric=metric)
    keys = sorted(set(a) & set(b))
    if not keys:
        return None
    diffs = [a[k] - b[k] for k in keys]
    p_value = None
    if len(diffs) > 1 and statistics.pstdev(diffs) > 0:
        p_value = float(stats.ttest_rel([a[k] for k in keys], [b[k] for k in keys]).pvalue)
    return {
        "metric": metric,
        "seeds": [k[0] for k in keys],
        "pairs": len(keys),
        "mean_diff": statistics.fmean(diffs),
        "std_diff": statistics.stdev(diffs) if len(diffs) > 1 else 0.0,
        "wins": sum(d > 0 for d in diffs),
        "p_value": p_value,
    }


T_TEST_REFERENCES = (("baseline", False), ("mixup", False), ("augmix", False), ("generative", True))
"""The verdicts' references and AugMix (which the verdicts leave out: the issue's comparisons are baseline, MixUp
and the generator alone)."""


def genmix_comparisons(records: list[dict[str, Any]], metric: str = "macro_f1") -> list[dict[str, Any]]:
    """The verdicts' comparisons (:func:`models.verdict.planned_comparisons`: each GenMix arm, fixed, filtered and
    tuned on validation) and each against AugMix, as per-seed paired t-tests; from raw run records."""
    records = study_records(records)
    out = []
    for target, reference in planned_comparisons(records, T_TEST_REFERENCES):
        result = paired_comparison(records, target, reference, metric)
        if result is not None:
            out.append({**result, "target": comparison_label(target, 0.5),
                        "reference": comparison_label(reference, 0.5)})  # fmt: skip
    return out


REAL_REFERENCES = ("mixup", "augmix")
"""The real-data augmentations a lab would use anyway: each is also compared with the baseline on its own, so a
study says what they do on the lab's classifier (outside the verdicts' Holm family, which is GenMix's)."""


def reference_comparisons(records: list[dict[str, Any]], metrics: tuple[str, ...] = ("macro_f1", "auc")
                          ) -> list[dict[str, Any]]:  # fmt: skip
    """Each real-data reference arm minus the baseline, per metric: per-seed paired t-test with its 95 % interval."""
    out = []
    for arm in REAL_REFERENCES:
        for metric in metrics:
            result = paired_comparison(records, (arm, None), ("baseline", None), metric)
            if result is None:
                continue
            n, mean = result["pairs"], result["mean_diff"]
            half = float(stats.t.ppf(0.975, n - 1)) * result["std_diff"] / n**0.5 if n > 1 else None
            interval = (mean - half, mean + half) if half is not None else None  # one pair: no spread to go on
            found = {**result, "target": comparison_label((arm, None, None), 0.5), "reference": "Baseline (Real)",
                     "interval": interval}  # fmt: skip
            out.append({**found, "line": reference_line(found)})
    return out


def reference_line(c: dict[str, Any]) -> str:
    """One reference comparison in words, as the CLI, the API and the web page show it."""
    head = f"{c['target']} vs {c['reference']}: {_difference(c, METRIC_NAMES[c['metric']])}"
    if c["interval"] is None:
        return f"{head} (one paired run: no interval)"
    return f"{head} over {c['pairs']} paired runs (t interval; not a verdict)"


def _difference(c: dict[str, Any], metric: str = "") -> str:
    """A reference comparison's mean difference in points, with its interval where it has one."""
    mean = f"{c['mean_diff'] * 100:+.1f}" + (f" {metric}" if metric else "")
    if c["interval"] is None:
        return mean
    return mean + " [{:+.1f}, {:+.1f}]".format(*(v * 100 for v in c["interval"]))


def _points(value: float) -> str:
    return f"{value * 100:+.1f}"


def _mde(mde: float) -> str:
    return "> 100" if mde >= 1 else f"{mde * 100:.1f}"


def _df(df: float | None) -> str:
    return "∞" if df is None else f"{df:.0f}" if df >= 10 else f"{df:.1f}"


def design_text(config: dict[str, Any]) -> str:
    """What the table's spread covers, in words."""
    seeds = len(config["seeds"])
    k = int(config.get("classifier_seeds_per_generator") or 1)
    plural = "s" if seeds != 1 else ""
    if k == 1:
        return (
            f"{seeds} seed{plural}, one classifier per arm and seed: each seed is one generator training and one "
            "classifier initialisation and data order; the spread covers both"
        )
    return (
        f"{seeds} seed{plural} × {k} classifier seeds: each generator trains once per seed and every arm trains {k} "
        f"classifiers on it (the same {k} classifier seeds in every arm), so the spread over the {seeds * k} runs "
        "mixes generator trainings and classifier seeds; the verdicts take each seed as one unit"
    )


def verdict_section(verdicts: dict[str, Any]) -> list[str]:
    """The verdict lines, what their intervals cover, and the numbers behind them (Markdown)."""
    done = verdicts.get("comparisons") or []
    lines = [f"**Verdicts** (macro F1, points; Holm-adjusted over the {len(done)} comparisons of this run):", ""]
    if not done:
        reasons = sorted({s["reason"] for s in verdicts.get("skipped") or []}) or ["no GenMix arm with a reference"]
        return [*lines, f"No verdict: {'; '.join(reasons)}.", ""]
    lines += [f"- {c['line']}" for c in done]
    lines += ["", f"What the intervals cover: {interval_cover(verdicts)}.", ""]
    if verdicts.get("plans"):
        effect = f"{PLAN_EFFECT * 100:g} points"
        heading = f"To see {effect} (from this run's variance parts; the test set's part does not shrink with seeds):"
        lines += [heading, "", *(f"- {plan}" for plan in verdicts["plans"]), ""]
    lines += [
        "| GenMix | vs | pairs | mean diff | 95 % interval | df | p | Holm p | MDE (80 %) | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in done:
        lines.append(
            f"| {c['target']} | {c['reference']} | {c['pairs']} | {_points(c['mean_diff'])} "
            f"| [{c['ci_low'] * 100:.1f}, {c['ci_high'] * 100:.1f}] | {_df(c.get('df'))} | {c['p_value']:.3f} "
            f"| {c['p_holm']:.3f} "
            f"| {_mde(c['mde'])} | {c['verdict']} |"
        )
    replicates = sorted({c["replicates"] for c in done})
    lines += ["", f"{verdicts.get('method', '')} Bootstrap replicates: {', '.join(map(str, replicates))}.", ""]
    return lines


def selection_section(records: list[dict[str, Any]]) -> list[str]:
    """Per seed, the GenMix combination chosen on validation (empty without list-valued settings)."""
    chosen = selections(records)
    if not chosen:
        return []
    lines = [
        "GenMix settings chosen per seed on validation macro F1 (never on test); the fixed arm keeps the paper's "
        "α = 0.3:",
        "",
        "| generator | seed | classifier seed | chosen | val macro F1 | candidates (val macro F1) |",
        "|---|---|---|---|---|---|",
    ]
    for s in chosen:
        settings = s["chosen"] or {}
        text = ", ".join(f"{k} {v}" for k, v in settings.items())
        best = next((c["val_macro_f1"] for c in s["candidates"] if c["run_id"] == s["chosen_run_id"]), None)
        scores = ", ".join(
            f"{c['run_id']} {c['val_macro_f1'] * 100:.1f}" if c["val_macro_f1"] is not None else f"{c['run_id']} n/a"
            for c in s["candidates"]
        )
        best_text = "n/a" if best is None else f"{best * 100:.1f}"
        lines.append(
            f"| {GENERATOR_LABELS.get(s['generator'], s['generator'])} | {s['seed']} | {s['replicate']} | {text} "
            f"| {best_text} | {scores} |"
        )
    return [*lines, ""]


def filter_section(generators: dict[str, Any], class_names: list[str], tau: float | None) -> list[str]:
    """Synthetic images dropped by the confidence filter, per generator, seed and class."""
    rows = [(info["generator"], info["seed"], info["filter"]) for info in generators.values() if info.get("filter")]
    if not rows:
        return []
    lines = [
        f"Synthetic images dropped by the filter (τ = {tau}: the same seed's baseline classifier gives the intended "
        "class a lower probability; the rows marked filtered train on the rest), dropped / sampled per class:",
        "",
        "| generator | seed | " + " | ".join(class_names) + " |",
        "|---|---|" + "---|" * len(class_names),
    ]
    for generator, seed, info in rows:
        cells = [f"{d} / {n}" for d, n in zip(info["dropped_per_class"], info["sampled_per_class"], strict=True)]
        lines.append(f"| {GENERATOR_LABELS.get(generator, generator)} | {seed} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def fine_tuning_text(clf: dict[str, Any]) -> str:
    """The classifier's start and recipe, e.g. ``ImageNet weights, 96 px input, adamw (weight decay 0.05), 1 warm-up
    epoch, cosine, `` (empty for the paper's plain Adam from scratch at the images' size); older results lack the
    keys."""
    parts = []
    if clf.get("weights") or clf.get("pretrained"):
        parts.append("weights from a file" if clf.get("weights") else "ImageNet weights")
    if clf.get("input_size"):
        parts.append(f"{clf['input_size']} px input")
    if clf.get("optimizer", "adam") != "adam" or clf.get("weight_decay"):
        parts.append(f"{clf.get('optimizer', 'adam')} (weight decay {clf.get('weight_decay', 0)})")
    if clf.get("warmup_epochs"):
        parts.append(f"{clf['warmup_epochs']} warm-up epoch{'s' if clf['warmup_epochs'] > 1 else ''}")
    if clf.get("schedule", "constant") != "constant":
        parts.append(clf["schedule"])
    if clf.get("backbone_lr_mult", 1.0) != 1.0:
        parts.append(f"backbone lr ×{clf['backbone_lr_mult']}")
    if clf.get("augment"):
        parts.append(f"augment {'+'.join(clf['augment'])}")
    if clf.get("ema_half_life"):
        parts.append(f"weight EMA (half-life {clf['ema_half_life']:g} epochs)")
    return "".join(f"{part}, " for part in parts)


def markdown_report(results: dict[str, Any], command: str) -> str:
    """The study's section for docs/RESULTS.md: command, the verdicts first, data, Table 1, the settings chosen on
    validation, the synthetic filter, generator quality, and the per-seed t-test table."""
    data = results["dataset"]
    config = results["config"]
    clf = config["classifier_resolved"]
    ratio = fixed_setting("synthetic_ratio", config["synthetic_ratio"])
    verdicts = results.get("verdicts") or compute_verdicts(results["records"], ratio)
    k = int(config.get("classifier_seeds_per_generator") or 1)
    tau = config.get("filter_tau")
    lines = [
        f"### {data['name']} ({data['image_size'][0]}x{data['image_size'][1]}, {data['channels']} channel(s), "
        f"{len(data['class_names'])} classes)",
        "",
        f"Command: `{command}`",
        "",
        *verdict_section(verdicts),
        f"Seeds {config['seeds']}" + (f", {k} classifier seeds per seed" if k > 1 else "") + "; train/val/test per "
        f"class {data['counts']['train']} / {data['counts']['val']} / {data['counts']['test']}; classifier "
        f"{clf['name']} ({fine_tuning_text(clf)}{clf['epochs']} epochs max, batch {clf['batch_size']}, lr "
        f"{clf['lr']}, patience {clf['patience']}, best epoch by {clf['monitor']}); synthetic ratio "
        f"{config['synthetic_ratio']}; GenMix "
        f"α = {config['alpha']}, β = {config['beta']}, pool {config['partner_pool']}, class-balanced partners "
        f"{'on' if config.get('class_balanced') else 'off'}, mix probability {config.get('mix_prob', 1.0)}"
        + (f"; synthetic filter τ = {tau} (the filtered rows)" if tau is not None else "")
        + f"; device {config['device']}.",
        "",
        *([f"Pixels: {describe_decode(data['decode'])}.", ""] if data.get("decode") else []),
        f"Test-set metrics in percent, mean ± std over runs ({design_text(config)}):",
        "",
        format_table(results["summary"], data["class_names"], markdown=True),
        "",
        *selection_section(results["records"]),
        *filter_section(results.get("generators") or {}, data["class_names"], tau),
    ]
    if results.get("quality"):
        lines += [
            "Generator quality, mean ± std over seeds (KID on features of "
            f"{results['quality'][0].get('feature_net', 'n/a')}; memorised = synthetic images closer "
            "to a training image than the 5th percentile of real-to-real distances; about 5 % is expected):",
            "",
            format_quality(results["quality"], markdown=True),
            "",
        ]
    comparisons = genmix_comparisons(results["records"])
    if comparisons:
        lines += [
            "Paired by seed, GenMix minus the reference (macro F1, points; per-seed paired t-test, uncorrected):",
            "",
            "| GenMix | vs | mean diff | std | wins | paired t-test p |",
            "|---|---|---|---|---|---|",
        ]
    for c in comparisons:
        lines.append(
            f"| {c['target']} | {c['reference']} | {c['mean_diff'] * 100:+.1f} | {c['std_diff'] * 100:.1f} "
            f"| {c['wins']}/{c['pairs']} | {_p(c['p_value'])} |"
        )
    references = reference_comparisons(results["records"])
    if references:
        lines += [
            *([""] if comparisons else []),
            "Paired by seed, each real-data augmentation minus the baseline (points, 95 % t interval over the "
            "paired runs; per-seed paired t-test, uncorrected; not among the verdicts):",
            "",
            "| Reference | metric | mean diff [95 % interval] | wins | paired t-test p |",
            "|---|---|---|---|---|",
        ]
    for c in references:
        interval = "" if c["interval"] is not None else " [n/a]"
        lines.append(
            f"| {c['target']} | {METRIC_NAMES[c['metric']]} | {_difference(c)}{interval} "
            f"| {c['wins']}/{c['pairs']} | {_p(c['p_value'])} |"
        )
    return "\n".join(lines) + "\n"


METRIC_NAMES = {"macro_f1": "macro F1", "auc": "AUC"}


def _p(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
