"""``genmix run --workers N``: one experiment's units on N local processes, so a study's seeds run side by side.

Without the service a lab still has several cores (or GPUs' worth of work queued on one); generator seeds and
classifiers are independent units (:mod:`models.units`) that each write their own files atomically and read
only their dependencies' finished files, which is what lets the service fan them out over Celery workers. Here
N spawned processes each read the set and build the runner once, then take unit after unit from the parent (as the
service's workers go on with their next ready unit in-process), in the one-process order as dependencies allow; a
unit that raises is reported with its traceback, a process that dies by its exit code, and the parent assembles the
results itself. Each unit seeds itself, so the results are those of a one-process run with the
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


def _work(job: _Job, tasks: Any, events: Any) -> None:
    """A unit process: load the set and build the runner once, then run each unit key the parent sends until
    it sends None (the set is read once per process, not once per unit)."""
    key = None
    try:
        from models.datasets import load_dataset
        from models.experiment import ExperimentRunner
        from models.runtime import configure_threads

        configure_threads(job.threads)
        dataset = load_dataset(job.dataset_path, job.read_options)
        observer = _ChildObserver(events, "")
        runner = ExperimentRunner(dataset, job.spec, job.out_dir, observer)
        units = {unit.key: unit for unit in runner.units()}
        while (key := tasks.get()) is not None:
            observer.key = key
            runner.run_unit(units[key])
            events.put(("done", key, 0, 0))
    except BaseException as exc:  # reported to the parent, which stops the others
        events.put(("error", key, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}", 0))
        raise SystemExit(1) from None


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
    from models.experiment import ExperimentRunner

    runner = ExperimentRunner(dataset, spec, out_dir, observer)
    runner.write_config()
    *units, assemble = runner.units()
    pending = [unit for unit in units if not runner.unit_done(unit)]
    finished = {unit.key for unit in units} - {unit.key for unit in pending}
    by_key = {unit.key: unit for unit in units}
    job = _Job(dataset_path, read_options, spec, out_dir, threads)
    context = mp.get_context("spawn")
    events = context.Queue()
    processes: list[tuple[Any, Any]] = []  # (process, its task queue)
    busy: dict[int, str] = {}  # process number -> the unit it runs
    progress = _Progress(len(pending))
    try:
        for number in range(min(workers, len(pending))):
            tasks = context.Queue()
            process = context.Process(target=_work, args=(job, tasks, events), name=f"genmix-unit-{number}")
            process.daemon = True
            process.start()
            processes.append((process, tasks))
        while pending or busy:
            idle = [number for number in range(len(processes)) if number not in busy]
            ready = [unit for unit in pending if set(unit.deps) <= finished]
            for number, unit in zip(idle, ready, strict=False):  # in one-process order: generators first
                pending.remove(unit)
                processes[number][1].put(unit.key)
                busy[number] = unit.key
                progress.show(unit.key, 0, 1)
            if not busy:
                raise UnitFailed(f"units wait on units that cannot run: {', '.join(u.key for u in pending)}")
            for kind, key, a, b in _events(events, timeout=POLL_S):
                if kind == "progress" and key in progress.running:
                    progress.show(key, a, b)
                elif kind == "error":
                    raise UnitFailed(f"unit {key} failed: {a}" if key else f"a unit process could not start: {a}")
                elif kind == "done":
                    busy = {number: running for number, running in busy.items() if running != key}
                    if not runner.unit_done(by_key[key]):
                        raise UnitFailed(f"unit {key} failed: it ended without writing its output")
                    finished.add(key)
                    progress.finished(key)
                    _report(by_key[key], spec, runner, observer, progress)
            for number, key in busy.items():
                code = processes[number][0].exitcode
                if code is not None:
                    raise UnitFailed(f"unit {key} failed: its process ended with exit code {code}")
        for _, tasks in processes:
            tasks.put(None)
        for process, _ in processes:
            process.join(timeout=30)
    finally:
        for process, _ in processes:
            if process.is_alive():
                process.terminate()
        for process, _ in processes:
            process.join(timeout=10)
        progress.close()
    return runner.run_unit(assemble) or {}


def _report(unit: Any, spec: Any, runner: Any, observer: Any, progress: _Progress) -> None:
    """A finished unit's line: the classifier's metrics (the one-process run's line), else its stage."""
    from models.checkpoint import read_json
    from models.units import planned_run_id

    if unit.kind == "classifier" and unit.run is not None:
        observer.run_finished(read_json(runner.layout.run_record(planned_run_id(spec, runner.runs[unit.run]))))
    else:
        progress.write(f"{unit.stage}: done")


def _events(events: Any, timeout: float) -> list[tuple[str, Any, Any, Any]]:
    """Every event the unit processes sent, waiting up to ``timeout`` s for the first."""
    found = []
    wait = timeout
    while True:
        try:
            found.append(events.get(timeout=wait))
        except queue.Empty:
            return found
        wait = 0.0  # the first event waited; the rest are read without waiting
