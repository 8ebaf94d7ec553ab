"""``genmix run --workers N``: one experiment's units on N local processes, so a study's seeds run side by side.

Without the service a lab still has several cores (or GPUs' worth of work queued on one); generator seeds and
classifiers are independent units (:mod:`models.units`) that each write their own files atomically and read
only their dependencies' finished files, which is what lets the service fan them out over Celery workers. Here
each unit runs in a fresh spawned process (its own memory, so one unit's heap never adds to the next; a crashed
or killed unit is seen by its exit code), at most N at a time in the one-process order, and the parent
assembles the results itself. Each unit seeds itself, so the results are those of a one-process run with the
same torch threads (``GENMIX_TORCH_THREADS``; other thread counts change float rounding, not the design).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

POLL_S = 0.5
"""How often the parent looks at its children and their progress."""
PROGRESS_EVERY_S = 1.0
"""A child reports its unit's progress at most this often."""


class UnitFailed(RuntimeError):
    """A unit's process raised or died; the message names the unit and what happened."""


def default_threads(workers: int) -> int:
    """Torch threads per unit process when ``GENMIX_TORCH_THREADS`` is not set: the cores shared out."""
    return max(1, (os.cpu_count() or 1) // workers)


@dataclass
class _Job:
    """What a unit process needs to rebuild the experiment on its own (all picklable)."""

    dataset_path: Path
    read_options: Any
    spec: Any
    out_dir: Path
    threads: int


class _ChildObserver:
    """A unit process's observer: progress, throttled, to the parent's queue; nothing on the terminal."""

    def __init__(self, events: Any, key: str) -> None:
        self.events, self.key = events, key
        self._last = 0.0

    def stage(self, name: str, index: int, count: int) -> None:
        self.events.put(("progress", self.key, 0, 1))

    def progress(self, step: int, total: int, metrics: dict[str, float]) -> None:
        now = time.monotonic()
        if now - self._last >= PROGRESS_EVERY_S or step >= total:
            self._last = now
            self.events.put(("progress", self.key, step, total))

    def should_stop(self) -> bool:
        return False

    def run_finished(self, record: dict[str, Any]) -> None:
        return None

    def artifact(self, kind: str, path: Path, meta: dict[str, Any]) -> None:
        return None


def _run_one(job: _Job, key: str, events: Any) -> None:
    """The body of a unit process: load the set, rebuild the runner, run the unit ``key``."""
    try:
        from models.datasets import load_dataset
        from models.experiment import ExperimentRunner
        from models.runtime import configure_threads

        configure_threads(job.threads)
        dataset = load_dataset(job.dataset_path, job.read_options)
        runner = ExperimentRunner(dataset, job.spec, job.out_dir, _ChildObserver(events, key))
        unit = next(u for u in runner.units() if u.key == key)
        runner.run_unit(unit)
    except BaseException as exc:  # reported to the parent, which stops the others
        events.put(("error", key, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}", 0))
        raise SystemExit(1) from None
    events.put(("done", key, 0, 0))


@dataclass
class _Progress:
    """A tqdm bar of finished units whose postfix shows each running unit's share done."""

    total: int
    bar: Any = None
    running: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        import sys

        from tqdm import tqdm

        self.bar = tqdm(total=self.total, desc="units", unit="unit", dynamic_ncols=True, file=sys.stderr)

    def show(self, key: str, step: int, total: int) -> None:
        self.running[key] = f"{100 * step // max(total, 1)}%"
        self._postfix()

    def finished(self, key: str) -> None:
        self.running.pop(key, None)
        self.bar.update(1)
        self._postfix()

    def _postfix(self) -> None:
        self.bar.set_postfix_str(", ".join(f"{k} {v}" for k, v in self.running.items()), refresh=True)

    def write(self, line: str) -> None:
        self.bar.write(line)

    def close(self) -> None:
        self.bar.close()


def run_units_in_parallel(
    dataset: Any, dataset_path: Path, read_options: Any, spec: Any, out_dir: Path, workers: int, threads: int,
    observer: Any,
) -> dict[str, Any]:  # fmt: skip
    """Run every unfinished unit of ``spec`` on at most ``workers`` processes, then assemble in this process.

    ``observer`` gets ``run_finished`` for each classifier a unit process finished, and the assemble unit's
    stages (figures). Raises :class:`UnitFailed` (the other units stopped; finished ones stay and a rerun
    resumes) when a unit raises or its process dies."""
    from models.checkpoint import read_json
    from models.experiment import ExperimentRunner
    from models.units import planned_run_id

    runner = ExperimentRunner(dataset, spec, out_dir, observer)
    runner.write_config()
    *units, assemble = runner.units()
    pending = [unit for unit in units if not runner.unit_done(unit)]
    finished = {unit.key for unit in units} - {unit.key for unit in pending}
    by_key = {unit.key: unit for unit in units}
    job = _Job(dataset_path, read_options, spec, out_dir, threads)
    context = mp.get_context("spawn")
    events = context.Queue()
    children: dict[str, Any] = {}
    errors: dict[str, str] = {}
    progress = _Progress(len(pending))
    try:
        while pending or children:
            for unit in [u for u in pending if set(u.deps) <= finished][: workers - len(children)]:
                pending.remove(unit)
                child = context.Process(target=_run_one, args=(job, unit.key, events), name=unit.key, daemon=True)
                child.start()
                children[unit.key] = child
                progress.show(unit.key, 0, 1)
            if not children:
                raise UnitFailed(f"units wait on units that cannot run: {', '.join(u.key for u in pending)}")
            _drain(events, progress, errors, timeout=POLL_S)
            for key, child in list(children.items()):
                if child.exitcode is None:
                    continue
                child.join()
                del children[key]
                _drain(events, progress, errors, timeout=0)
                if child.exitcode != 0 or not runner.unit_done(by_key[key]):
                    reason = errors.get(key) or f"its process ended with exit code {child.exitcode}"
                    raise UnitFailed(f"unit {key} failed: {reason}")
                finished.add(key)
                progress.finished(key)
                unit = by_key[key]
                if unit.kind == "classifier" and unit.run is not None:
                    rid = planned_run_id(spec, runner.runs[unit.run])
                    observer.run_finished(read_json(runner.layout.run_record(rid)))
                else:
                    progress.write(f"{unit.stage}: done")
    finally:
        for child in children.values():
            child.terminate()
        for child in children.values():
            child.join(timeout=10)
        progress.close()
    return runner.run_unit(assemble) or {}


def _drain(events: Any, progress: _Progress, errors: dict[str, str], timeout: float) -> None:
    """Read every event the unit processes sent (waiting up to ``timeout`` s for the first)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            kind, key, a, b = events.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return
        if kind == "progress" and key in progress.running:
            progress.show(key, a, b)
        elif kind == "error":
            errors[key] = str(a)
        deadline = time.monotonic()  # the first event waited; the rest are read without waiting
