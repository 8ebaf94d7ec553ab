"""One delivery of one job: claim it, coordinate its units (running them itself while it waits), record what
they produced, close it.

A job is a graph of units (:mod:`models.units`). The delivery that claims the job is its coordinator: it
writes the units into the database, publishes every ready unit as a ``genmix.run_unit`` message on the job's
queue (any worker on that queue may take it, on any machine), and itself takes the first ready unit nobody
has claimed, in the order a one-worker job always ran its stages, until none is left. Meanwhile it re-queues
units whose worker died and publishes units that became ready. When every unit has succeeded it records the
results and moves the job to ``succeeded``; a cancel or a failed unit stops every unit of the job within
``cancel_poll_interval`` and, once they have stopped, ends the job ``cancelled`` or ``failed`` with that unit's
error. A delivery whose job another delivery took over stops (``stopped``) and writes nothing more: the job,
its units and their messages belong to the new one. The output folder is ``<artifact_root>/jobs/<id>`` on
every attempt, so a redelivered job reuses every finished unit and resumes unfinished training from
checkpoints. With one worker (the embedded default) the coordinator runs every unit itself, one after another,
exactly as before.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

from core.crud import lifecycle
from core.crud import units as unit_crud
from core.db.session import Database
from core.joberrors import public_error
from core.jobstate import JobStatus
from core.settings import Settings
from models.checkpoint import read_json
from workers import dbretry
from workers.extension import copy_extended
from workers.liveness import owner_alive, unit_alive
from workers.monitor import JobMonitor
from workers.units import (
    JobContext,
    experiment_spec,
    load_context,
    publish_ready,
    revoke,
    run_unit,
    this_host,
)

log = logging.getLogger("genmix.worker")
__all__ = ["JobBusyError", "Outcome", "execute", "experiment_spec"]


class JobBusyError(Exception):
    """Another live worker holds the job; the task retries later instead of running it twice."""


@dataclass(frozen=True)
class Outcome:
    status: str
    detail: str = ""


def _error_text(exc: BaseException) -> str:
    """What the job's client reads (a sentence, no server path); the traceback goes to this worker's log."""
    return public_error(exc)


def execute(job_id: str, settings: Settings) -> Outcome:
    """Run one delivery of ``job_id``; raises :class:`JobBusyError` when another live worker holds it."""
    db = Database(settings.database_url)
    try:
        return _execute(db, job_id, settings)
    finally:
        db.dispose()


STOP_WAIT_SECONDS = 120.0
"""How long a cancelled or failing job waits for its units on other workers to stop before it ends anyway
(they stop within ``cancel_poll_interval`` plus one training step; a unit whose worker died meanwhile is not
waited for past its heartbeat's ``stale_after``)."""


def _execute(db: Database, job_id: str, settings: Settings) -> Outcome:
    host, pid = this_host(), os.getpid()
    alive = partial(owner_alive, host=host, stale_after=settings.stale_after)
    try:
        claim = dbretry.write(db, lambda session: lifecycle.claim_job(
            session, job_id=job_id, host=host, pid=pid, owner_alive=alive),
            seconds=settings.db_retry_seconds, what=f"job {job_id}: claim")  # fmt: skip
    except dbretry.DatabaseUnavailable as exc:  # nothing was taken: deliver the message again later
        raise JobBusyError(str(exc)) from None
    if claim.outcome == "busy":
        raise JobBusyError(claim.reason)
    if claim.outcome == "skip":
        log.info("job %s: skipped (%s)", job_id, claim.reason)
        return Outcome("skipped", claim.reason)
    attempt = claim.attempt
    log.info("job %s: attempt %d on %s pid %d", job_id, attempt, host, pid)
    monitor = JobMonitor(db, job_id, attempt, poll_interval=settings.cancel_poll_interval,
                         heartbeat_interval=settings.heartbeat_interval)  # fmt: skip
    monitor.start()
    ctx: JobContext | None = None

    def finish(status: JobStatus, **data: Any) -> bool:
        """The final status, retried for ``db_final_retry_seconds``; raises DatabaseUnavailable past that."""
        return dbretry.write(db, lambda session: lifecycle.finish_job(
            session, job_id=job_id, attempt=attempt, status=status, **data),
            seconds=settings.db_final_retry_seconds, what=f"job {job_id}: final status")  # fmt: skip

    try:
        ctx = load_context(db, settings, job_id, attempt)
        ending = _coordinate(db, settings, ctx, monitor)
        if ending.status == "stopped":  # taken over: no wrap-up, no final status, its units are not ours
            log.info("job %s: attempt %d stops (%s)", job_id, attempt, ending.detail)
            return ending
        if ending.status == "cancelled":
            _wrap_up(ctx, db)
            finish(JobStatus.cancelled, reason=monitor.reason or ending.detail or "cancelled")
            return Outcome("cancelled", monitor.reason)
        if ending.status == "failed":
            _wrap_up(ctx, db)
            finish(JobStatus.failed, error=ending.detail)
            return Outcome("failed", ending.detail)
        results = read_json(ctx.out_dir / "results.json")
        class_names = ctx.imageset.class_names

        def record_all(session: Any) -> None:
            for record in results.get("records", []):
                lifecycle.record_run(session, job_id=job_id, record=record, class_names=class_names,
                                     announce="if_new")  # fmt: skip

        dbretry.write(db, record_all, seconds=settings.db_final_retry_seconds, what=f"job {job_id}: results")
        _wrap_up(ctx, db)
        finish(JobStatus.succeeded)  # a cancel acknowledged meanwhile makes it "cancelled" (lifecycle.finish_job)
        return Outcome("succeeded")
    except Exception as exc:
        if dbretry.unavailable(exc):
            return _lost(job_id, exc)
        if monitor.taken_over:  # the job is another delivery's now: nothing of it to record here
            log.warning("job %s: attempt %d stops after an error (taken over)", job_id, attempt, exc_info=True)
            return Outcome("stopped", monitor.reason)
        log.exception("job %s failed", job_id)
        if ctx is not None:
            _wrap_up(ctx, db)
        try:
            finish(JobStatus.failed, error=_error_text(exc))
        except Exception as final:
            if dbretry.unavailable(final):
                return _lost(job_id, final)
            raise
        return Outcome("failed", str(exc))
    finally:
        monitor.close()
        if ctx is not None and not monitor.taken_over:  # after a takeover they are the new delivery's messages
            _revoke_leftovers(db, settings, job_id)


def _revoke_leftovers(db: Database, settings: Settings, job_id: str) -> None:
    """The job's delivery ends: revoke the messages of its units still waiting (a next delivery publishes
    them again), so no worker spends a pool process on them."""
    try:
        with db.session() as session:
            ids = unit_crud.waiting_messages(session, job_id=job_id)
    except Exception as exc:
        if not dbretry.unavailable(exc):
            raise
        return
    revoke(settings, job_id, list(ids))


def _record_reused(ctx: JobContext, runner: Any, copied: int | None, write: Any) -> None:
    """An extended job's finished runs into the database before any unit runs (on every delivery: a lost one may
    have copied without recording), and, after the copy, the reused seeds' GenMix samples (their synthetic ones
    come with the final sweep)."""
    assert ctx.extends is not None
    reused = runner.finished_records()
    write("reused runs", lambda session: lifecycle.record_extension(
        session, job_id=ctx.job_id, extends=ctx.extends[0], files=copied, records=reused,
        class_names=ctx.imageset.class_names))  # fmt: skip
    log.info("job %s: extends job %s: %s files copied, %d runs finished", ctx.job_id, ctx.extends[0], copied,
             len(reused))  # fmt: skip
    if copied is None:
        return
    for path in runner.finished_exports():
        try:  # samples are a convenience: never fail a job over one
            ctx.samples.from_export(path)
        except Exception:
            log.warning("job %s: could not materialise samples from %s", ctx.job_id, path, exc_info=True)


def _coordinate(db: Database, settings: Settings, ctx: JobContext, monitor: JobMonitor) -> Outcome:
    """Plan the job's units, publish the ready ones, run units here until every one has succeeded (``succeeded``),
    or a cancel (``cancelled``) or a failed unit (``failed`` with its error) ended the job once its running units
    have stopped, or another delivery took the job over (``stopped``, at once). A unit of its own that ended
    without a final status (the database stayed out of reach) raises :class:`dbretry.DatabaseUnavailable`: the
    delivery ends as a lost one, and the job's next delivery re-queues that unit (its pid is then dead)."""
    from models.experiment import ExperimentRunner, NullObserver

    job_id = ctx.job_id
    copied = copy_extended(ctx.extends[1], ctx.out_dir, ctx.extends[0]) if ctx.extends is not None else None
    runner = ExperimentRunner(ctx.imageset, ctx.spec, ctx.out_dir, NullObserver())
    runner.write_config()  # an extension whose design differs from the copied runs' is refused here
    planned = [unit_crud.PlannedUnit(u.key, u.kind, u.stage, u.index, u.deps, runner.unit_done(u))
               for u in runner.units()]  # fmt: skip

    def write(what: str, fn: Any) -> Any:
        return dbretry.write(db, fn, seconds=settings.db_retry_seconds, what=f"job {job_id}: {what}")

    if ctx.extends is not None:
        _record_reused(ctx, runner, copied, write)
    write("plan units", lambda session: unit_crud.plan(session, job_id=job_id, units=planned))
    host = this_host()
    alive = partial(unit_alive, host=host, pid=os.getpid(), stale_after=settings.stale_after)
    poll = max(0.05, min(settings.cancel_poll_interval, 0.5))
    while True:
        if monitor.stop_requested.is_set():
            if monitor.taken_over:
                return Outcome("stopped", monitor.reason)
            return _stop_all(db, settings, ctx, "cancelled", monitor.reason)
        requeued = write("re-queue units", lambda session: unit_crud.requeue_dead(session, job_id=job_id, alive=alive))
        if requeued:
            log.warning("job %s: units %s lost their worker; queued again", job_id, ", ".join(requeued))
        rows = write("read units", lambda session: [(u.key, u.status, u.error) for u in
                                                    unit_crud.units_of(session, job_id)])  # fmt: skip
        failed = next(((key, error) for key, status, error in rows if status == unit_crud.FAILED), None)
        if failed is not None:
            return _stop_all(db, settings, ctx, "failed", failed[1] or f"unit {failed[0]} failed")
        if all(status == unit_crud.SUCCEEDED for _, status, _ in rows):
            return Outcome("succeeded")
        # Take the first ready unit nobody has claimed (one-worker order), then publish the others.
        ready = write("ready units", lambda session: [u.key for u in unit_crud.ready_units(session, job_id)])
        mine: tuple[str, int, str | None] | None = None
        for key in ready:
            claim = write(f"claim unit {key}", lambda session, key=key: unit_crud.claim_unit(
                session, job_id=job_id, key=key, host=host, pid=os.getpid()))  # fmt: skip
            if claim.outcome == "run":
                mine = (key, claim.attempt, claim.message_id)
                break
        publish_ready(db, settings, job_id, ctx.queue)
        if mine is not None:
            revoke(settings, job_id, [mine[2]])  # its message, if it had one, is stale: taken here
            keeper = Housekeeper(db, settings, ctx, max(1.0, settings.cancel_poll_interval), running_here=mine[0])
            keeper.start()
            try:
                outcome = run_unit(db, settings, ctx, mine[0], mine[1], job_monitor=monitor)
            finally:
                keeper.close()
            if outcome.status == "lost":  # its end is unrecorded, the database away: end as a lost delivery
                raise dbretry.DatabaseUnavailable(f"job {job_id}: unit {mine[0]}: {outcome.error}")
        else:
            monitor.stop_requested.wait(poll)


class Housekeeper(threading.Thread):
    """While the coordinator trains a unit of its own, re-queue (and publish again) the units whose worker died
    and publish units that became ready, every ``interval`` seconds, so a lost machine's unit never waits for
    the coordinator's unit to end."""

    def __init__(self, db: Database, settings: Settings, ctx: JobContext, interval: float, *,
                 running_here: str) -> None:  # fmt: skip
        super().__init__(name=f"genmix-units-{ctx.job_id[:8]}", daemon=True)
        self.db, self.settings, self.ctx, self.interval = db, settings, ctx, interval
        self.running_here = running_here
        self._closing = threading.Event()

    def run(self) -> None:
        alive = partial(unit_alive, host=this_host(), pid=os.getpid(), stale_after=self.settings.stale_after,
                        running_here=(self.running_here,))  # fmt: skip
        while not self._closing.wait(self.interval):
            try:
                with self.db.session() as session:
                    requeued = unit_crud.requeue_dead(session, job_id=self.ctx.job_id, alive=alive)
                if requeued:
                    log.warning("job %s: units %s lost their worker; queued again", self.ctx.job_id,
                                ", ".join(requeued))  # fmt: skip
                publish_ready(self.db, self.settings, self.ctx.job_id, self.ctx.queue)
            except Exception as exc:  # an outage: the next round tries again
                if not dbretry.unavailable(exc):
                    log.warning("job %s: unit housekeeping failed", self.ctx.job_id, exc_info=True)

    def close(self) -> None:
        self._closing.set()
        if self.is_alive():
            self.join(timeout=10)


def _stop_all(db: Database, settings: Settings, ctx: JobContext, status: str, detail: str) -> Outcome:
    """Wait until no unit of the job runs any more (each stops within ``cancel_poll_interval`` of seeing the
    cancel or the failed unit), at most :data:`STOP_WAIT_SECONDS`; the job's ending."""
    deadline = time.monotonic() + STOP_WAIT_SECONDS
    alive = partial(unit_alive, host=this_host(), pid=os.getpid(), stale_after=settings.stale_after)
    while time.monotonic() < deadline:
        try:
            with db.session() as session:
                unit_crud.requeue_dead(session, job_id=ctx.job_id, alive=alive)
                running = unit_crud.counts(session, ctx.job_id).get(unit_crud.RUNNING, 0)
        except Exception as exc:
            if not dbretry.unavailable(exc):
                raise
            running = 1
        if not running:
            break
        time.sleep(0.2)
    else:
        log.warning("job %s: units still running after %.0f s; ending the job anyway", ctx.job_id, STOP_WAIT_SECONDS)
    return Outcome(status, detail)


def _lost(job_id: str, exc: BaseException) -> Outcome:
    """The job's bookkeeping could not reach the database for the whole retry window. The job is left as it is
    (``running``, this worker's pid and heartbeat): this delivery ends, its one-task process exits, and the
    sweep of any live worker re-queues the job because its worker is gone (:mod:`workers.sweep`)."""
    log.error("job %s: %s; leaving the job to the orphan sweep (it resumes from its checkpoints)",
              job_id, dbretry.first_line(exc))  # fmt: skip
    return Outcome("lost", dbretry.first_line(exc))


def _wrap_up(ctx: JobContext, db: Database) -> None:
    """Register every artifact and sample the job produced (also after a cancel or an error), on whichever
    worker its units ran; the real samples only once some unit has started training (before that the job has
    produced nothing to show)."""
    with db.session() as session:
        trained = any(u.step or u.status == unit_crud.SUCCEEDED for u in unit_crud.units_of(session, ctx.job_id)
                      if u.kind != "assemble")  # fmt: skip
    steps = [ctx.samples.real_samples] if trained else []
    for step in (*steps, ctx.samples.sweep, ctx.recorder.sweep):
        try:
            step()
        except Exception:
            log.warning("wrap-up step %s failed", step.__qualname__, exc_info=True)
