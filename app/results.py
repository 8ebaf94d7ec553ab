"""Summaries of a job's runs: mean and standard deviation of each metric over seeds, per arm and generator."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

METRICS = ("accuracy", "macro_f1", "balanced_accuracy", "auc")


def summarize(runs: Iterable[Any]) -> list[dict[str, Any]]:
    """One row per (arm, generator) in order of appearance; std is the sample std (None for one seed)."""
    groups: dict[tuple[str, str | None], list[Any]] = defaultdict(list)
    for run in runs:
        groups[(run.arm, run.generator)].append(run)
    rows = []
    for (arm, generator), members in groups.items():
        metrics: dict[str, dict[str, float | None]] = {}
        for name in METRICS:
            values = [getattr(run, name) for run in members if getattr(run, name) is not None]
            metrics[name] = {
                "mean": statistics.fmean(values) if values else None,
                "std": statistics.stdev(values) if len(values) > 1 else None,
            }
        rows.append({"arm": arm, "generator": generator, "seeds": len(members), "metrics": metrics})
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of :func:`summarize` rows (used by ``genmix demo``)."""
    header = f"{'arm':<12} {'generator':<10} {'seeds':>5}  " + "  ".join(f"{m:>17}" for m in METRICS)
    lines = [header, "-" * len(header)]
    for row in rows:
        cells = []
        for name in METRICS:
            mean, std = row["metrics"][name]["mean"], row["metrics"][name]["std"]
            cell = "n/a" if mean is None else f"{mean:.3f}" + (f" ± {std:.3f}" if std is not None else "")
            cells.append(f"{cell:>17}")
        lines.append(f"{row['arm']:<12} {row['generator'] or '-':<10} {row['seeds']:>5}  " + "  ".join(cells))
    return "\n".join(lines)
