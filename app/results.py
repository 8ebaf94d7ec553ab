"""A job's Table 1 and verdicts from its stored run records, by the same code that writes the CLI's report
(models.table, models.verdict)."""

from __future__ import annotations

from collections import OrderedDict
from threading import Lock
from typing import Any

from core.db.orm import Job
from models.report import reference_comparisons
from models.spec import fixed_setting
from models.table import summary_rows
from models.verdict import design_notice, verdicts

_CACHE: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
_CACHE_SIZE = 64
_LOCK = Lock()


def _ratio(job: Job) -> float:
    """The generator-alone arm's synthetic ratio (the fixed one when the spec gives a list)."""
    return float(fixed_setting("synthetic_ratio", job.spec.get("synthetic_ratio", 0.5)))


def job_summary(job: Job) -> list[dict[str, Any]]:
    """One row per method (arm and generator) in the order the runs were recorded; [] before the first run."""
    runs = list(job.runs)
    if not runs:
        return []
    class_names = [metric.class_name for metric in runs[0].class_metrics]
    return summary_rows([run.record for run in runs], class_names, _ratio(job))


def job_references(job: Job) -> list[dict[str, Any]]:
    """MixUp and AugMix against the baseline, paired by seed, as the report's table (:mod:`models.report`)."""
    return reference_comparisons([run.record for run in job.runs])


def job_design_note(job: Job) -> str | None:
    """What the CLI says before training when the job's seeds cannot reach a verdict (:func:`design_notice`)."""
    spec = job.spec or {}
    seeds, k = len(spec.get("seeds") or []), int(spec.get("classifier_seeds_per_generator") or 1)
    return design_notice(seeds, k, spec.get("arms") or [])


def job_verdicts(job: Job) -> dict[str, Any] | None:
    """The verdict lines and the numbers behind them (None before the first run).

    The bootstrap takes milliseconds for a usual study but grows with seeds × test images, and a job page asks
    again after every finished run: the answer is kept per job and set of finished runs.
    """
    runs = list(job.runs)
    if not runs:
        return None
    key = (job.id, tuple(sorted((run.run_id, run.macro_f1) for run in runs)))
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    found = verdicts([run.record for run in runs], _ratio(job))
    with _LOCK:
        _CACHE[key] = found
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return found
