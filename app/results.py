"""A job's Table 1 from its stored run records, by the same code that writes the CLI's report (models.table)."""

from __future__ import annotations

from typing import Any

from core.db.orm import Job
from models.table import summary_rows


def job_summary(job: Job) -> list[dict[str, Any]]:
    """One row per method (arm and generator) in the order the runs were recorded; [] before the first run."""
    runs = list(job.runs)
    if not runs:
        return []
    class_names = [metric.class_name for metric in runs[0].class_metrics]
    ratio = float(job.spec.get("synthetic_ratio", 0.5))
    return summary_rows([run.record for run in runs], class_names, ratio)
