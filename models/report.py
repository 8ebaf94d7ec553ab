"""Paired comparisons between arms over seeds, and the Markdown report a study writes.

With a handful of seeds, the spread between seeds often exceeds the differences between arms, so every
comparison is paired by seed (same data order and initialisation) and reported with its spread and a
paired t-test, never as a bare difference of means.
"""

from __future__ import annotations

import statistics
from typing import Any

from scipy import stats

from models.table import GENERATOR_LABELS, format_quality, format_table, row_label


def _by_seed(records: list[dict[str, Any]], arm: str, generator: str | None, metric: str) -> dict[int, float]:
    return {
        r["seed"]: r["metrics"][metric]
        for r in records
        if r["arm"] == arm and r.get("generator") == generator and r["metrics"][metric] is not None
    }


def paired_comparison(
    records: list[dict[str, Any]],
    target: tuple[str, str | None],
    reference: tuple[str, str | None],
    metric: str = "macro_f1",
) -> dict[str, Any] | None:
    """target − reference on ``metric`` over the seeds both have: mean, std, wins, paired t-test p."""
    a, b = _by_seed(records, *target, metric), _by_seed(records, *reference, metric)
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    diffs = [a[s] - b[s] for s in seeds]
    p_value = None
    if len(diffs) > 1 and statistics.pstdev(diffs) > 0:
        p_value = float(stats.ttest_rel([a[s] for s in seeds], [b[s] for s in seeds]).pvalue)
    return {
        "metric": metric,
        "seeds": seeds,
        "mean_diff": statistics.fmean(diffs),
        "std_diff": statistics.stdev(diffs) if len(diffs) > 1 else 0.0,
        "wins": sum(d > 0 for d in diffs),
        "p_value": p_value,
    }


def genmix_comparisons(records: list[dict[str, Any]], metric: str = "macro_f1") -> list[dict[str, Any]]:
    """GenMix with each generator against baseline, MixUp, AugMix and the same generator alone."""
    generators = sorted({r["generator"] for r in records if r["arm"] == "genmix"})
    out = []
    for gen in generators:
        for ref in [("baseline", None), ("mixup", None), ("augmix", None), ("generative", gen)]:
            result = paired_comparison(records, ("genmix", gen), ref, metric)
            if result is not None:
                result["target"] = row_label("genmix", gen, 0.5)
                result["reference"] = (
                    row_label(ref[0], ref[1], 0.5) if ref[1] is None else f"{GENERATOR_LABELS.get(gen, gen)} alone"
                )
                out.append(result)
    return out


def markdown_report(results: dict[str, Any], command: str) -> str:
    """The study's section for docs/RESULTS.md: command, data, Table 1, paired comparisons."""
    data = results["dataset"]
    config = results["config"]
    clf = config["classifier_resolved"]
    lines = [
        f"### {data['name']} ({data['image_size'][0]}x{data['image_size'][1]}, {data['channels']} channel(s), "
        f"{len(data['class_names'])} classes)",
        "",
        f"Command: `{command}`",
        "",
        f"Seeds {config['seeds']}; train/val/test per class {data['counts']['train']} / {data['counts']['val']} / "
        f"{data['counts']['test']}; classifier {clf['name']} ({clf['epochs']} epochs max, batch {clf['batch_size']}, "
        f"lr {clf['lr']}, patience {clf['patience']}, best epoch by {clf['monitor']}); synthetic ratio "
        f"{config['synthetic_ratio']}; GenMix α = {config['alpha']}, β = {config['beta']}, pool "
        f"{config['partner_pool']}, class-balanced partners {'on' if config.get('class_balanced') else 'off'}, "
        f"mix probability {config.get('mix_prob', 1.0)}; device {config['device']}.",
        "",
        "Test-set metrics in percent, mean ± std over seeds:",
        "",
        format_table(results["summary"], data["class_names"], markdown=True),
        "",
        "Generator quality, mean ± std over seeds (KID on features of "
        f"{(results.get('quality') or [{}])[0].get('feature_net', 'n/a')}; memorised = synthetic images closer "
        "to a training image than the 5th percentile of real-to-real distances; about 5 % is expected):",
        "",
        format_quality(results.get("quality") or [], markdown=True),
        "",
        "Paired by seed, GenMix minus the reference (macro F1, points):",
        "",
        "| GenMix | vs | mean diff | std | wins | paired t-test p |",
        "|---|---|---|---|---|---|",
    ]
    for c in genmix_comparisons(results["records"]):
        p = "n/a" if c["p_value"] is None else f"{c['p_value']:.3f}"
        lines.append(
            f"| {c['target']} | {c['reference']} | {c['mean_diff'] * 100:+.1f} | {c['std_diff'] * 100:.1f} "
            f"| {c['wins']}/{len(c['seeds'])} | {p} |"
        )
    return "\n".join(lines) + "\n"
