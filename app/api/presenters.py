"""ORM rows to response models (the one place that decides what a client sees of a row)."""

from __future__ import annotations

from fastapi import Request

from app.results import job_design_note, job_references, job_summary, job_verdicts
from app.schemas import (
    ArtifactOut,
    ClassMetricOut,
    DatasetOut,
    JobOut,
    ProgressOut,
    ReferenceOut,
    ResultsOut,
    RunOut,
    SampleOut,
    SummaryRow,
    UnitOut,
    UnitsSummaryOut,
    VerdictsOut,
)
from core.crud.units import summarise as summarise_units
from core.db.orm import Artifact, Dataset, Job, JobUnit, Run, Sample
from core.jobstate import TERMINAL, JobStatus


def url(request: Request, path: str) -> str:
    """An absolute link: ``GENMIX_PUBLIC_URL`` when set, else the request's own base (its Host header passed
    ``GENMIX_ALLOWED_HOSTS`` in :class:`app.errors.RequestGuard`, so a made-up host is never echoed)."""
    public = request.app.state.services.settings.public_url
    base = public if public else str(request.base_url)
    return base.rstrip("/") + path


def dataset_out(dataset: Dataset) -> DatasetOut:
    counts: dict[str, dict[str, int]] = {}
    for row in dataset.splits:
        counts.setdefault(row.split, {})[row.class_name] = row.count
    return DatasetOut(
        id=dataset.id,
        name=dataset.name,
        format=dataset.format,
        classes=list(dataset.class_names),
        counts=counts,
        patients=dataset.patients,
        decode=dataset.decode,
        channels=dataset.channels,
        image_size=(dataset.height, dataset.width),
        num_images=dataset.num_images,
        sha256=dataset.sha256,
        size_bytes=dataset.size_bytes,
        created_at=dataset.created_at,
    )


def run_out(run: Run) -> RunOut:
    metrics = run.record.get("metrics") or {}
    return RunOut(
        run_id=run.run_id,
        arm=run.arm,
        generator=run.generator,
        seed=run.seed,
        accuracy=run.accuracy,
        macro_f1=run.macro_f1,
        balanced_accuracy=run.balanced_accuracy,
        auc=run.auc,
        best_epoch=run.best_epoch,
        epochs_trained=run.epochs_trained,
        per_class=[
            ClassMetricOut(
                class_index=m.class_index,
                class_name=m.class_name,
                support=m.support,
                sensitivity=m.sensitivity,
                specificity=m.specificity,
                precision=m.precision,
                f1=m.f1,
            )
            for m in run.class_metrics
        ],
        confusion_matrix=metrics.get("confusion_matrix"),
    )


def unit_out(unit: JobUnit, *, job_over: bool = False) -> UnitOut:
    """``job_over``: the job has a final status, so none of its units has an ETA any more."""
    return UnitOut(key=unit.key, kind=unit.kind, stage=unit.stage, status=unit.status, deps=list(unit.deps),
                   attempts=unit.attempts, host=unit.worker_host, step=unit.step, total=unit.total,
                   eta_seconds=None if job_over else unit.eta_seconds, resumed_step=unit.resumed_step, error=unit.error,
                   started_at=unit.started_at, finished_at=unit.finished_at)  # fmt: skip


def job_out(request: Request, job: Job, *, with_results: bool = False) -> JobOut:
    results = None
    units = summary = None
    if with_results:
        over = JobStatus(job.status) in TERMINAL
        units = [unit_out(unit, job_over=over) for unit in job.units]
        summary = UnitsSummaryOut.model_validate(summarise_units(job.units, job_over=over))
        verdicts = job_verdicts(job)
        results = ResultsOut(
            verdicts=VerdictsOut.model_validate(verdicts) if verdicts is not None else None,
            references=[ReferenceOut.model_validate(c) for c in job_references(job)],
            runs=[run_out(run) for run in job.runs],
            summary=[SummaryRow.model_validate(row) for row in job_summary(job)],
            dataset_decode=job.spec.get("dataset_decode"),
        )
    return JobOut(
        id=job.id,
        dataset_id=job.dataset_id,
        status=JobStatus(job.status),
        queue=job.queue,
        spec=job.spec,
        progress=ProgressOut(
            stage=job.stage,
            stage_index=job.stage_index,
            stage_count=job.stage_count,
            step=job.step,
            total=job.total,
            eta_seconds=job.eta_seconds,
            metrics=job.progress_metrics,
        ),
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        cancel_requested=job.cancel_requested,
        error=job.error,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        heartbeat_at=job.heartbeat_at,
        results=results,
        units=units,
        units_summary=summary,
        design_note=job_design_note(job),
        links={
            "self": url(request, f"/jobs/{job.id}"),
            "events": url(request, f"/jobs/{job.id}/events"),
            "artifacts": url(request, f"/jobs/{job.id}/artifacts"),
            "samples": url(request, f"/samples?job_id={job.id}"),
        },
    )


def sample_out(request: Request, sample: Sample, class_names: list[str] | None) -> SampleOut:
    name = class_names[sample.label] if class_names and 0 <= sample.label < len(class_names) else None
    return SampleOut(
        id=sample.id,
        job_id=sample.job_id,
        kind=sample.kind,
        label=sample.label,
        class_name=name,
        soft_label=sample.soft_label,
        lam=sample.lam,
        partner_pool=sample.partner_pool,
        parent_real_id=sample.parent_real_id,
        parent_partner_id=sample.parent_partner_id,
        generator=sample.generator,
        seed=sample.seed,
        width=sample.width,
        height=sample.height,
        url=url(request, f"/samples/{sample.id}"),
    )


def artifact_out(request: Request, artifact: Artifact) -> ArtifactOut:
    return ArtifactOut(
        id=artifact.id,
        job_id=artifact.job_id,
        kind=artifact.kind,
        name=artifact.name,
        size_bytes=artifact.size_bytes,
        media_type=artifact.media_type,
        meta=artifact.meta,
        created_at=artifact.created_at,
        url=url(request, f"/jobs/{artifact.job_id}/artifacts/{artifact.id}"),
    )
