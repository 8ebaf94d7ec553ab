"""Typed ORM models of every table; the API and the workers share them. Migrations live in ``migrations/``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db.base import Base, utcnow


class ApiKey(Base):
    """A hashed API key: ``gmx_<id>_<secret>``; only sha256(secret) is stored."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    owner: Mapped[str] = mapped_column(String(200), index=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Dataset(Base):
    """An uploaded, validated dataset, stored normalised as a MedMNIST-layout npz under the artifact root."""

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200), index=True)
    name: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(20))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    channels: Mapped[int]
    height: Mapped[int]
    width: Mapped[int]
    num_classes: Mapped[int]
    num_images: Mapped[int]
    class_names: Mapped[list[Any]]
    decode: Mapped[dict[str, Any] | None]
    """How pixels became images (window, multi-frame rule, ROI, normalisation; images per rule); null for npz
    files and plain image folders. Choices and counts only: never a tag, a file name or a patient id."""
    patients: Mapped[dict[str, Any] | None]
    """Distinct patients per split, when every image's patient was known; else null."""
    storage_path: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    splits: Mapped[list[DatasetSplit]] = relationship(
        back_populates="dataset", cascade="all, delete-orphan", order_by="DatasetSplit.id"
    )


class DatasetSplit(Base):
    """Images per split and class (queryable counts, not a blob)."""

    __tablename__ = "dataset_splits"
    __table_args__ = (UniqueConstraint("dataset_id", "split", "class_index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    split: Mapped[str] = mapped_column(String(10))
    class_index: Mapped[int]
    class_name: Mapped[str] = mapped_column(String(200))
    count: Mapped[int]

    dataset: Mapped[Dataset] = relationship(back_populates="splits")


class Job(Base):
    """One GenMix experiment and its live state; the Celery message only carries ``id``."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_owner_status", "owner", "status"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200), index=True)
    dataset_id: Mapped[str | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"), index=True)
    spec: Mapped[dict[str, Any]]
    queue: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(12), index=True)
    stage: Mapped[str | None] = mapped_column(String(200))
    stage_index: Mapped[int | None]
    stage_count: Mapped[int | None]
    stage_started_at: Mapped[datetime | None]
    step: Mapped[int | None]
    total: Mapped[int | None]
    eta_seconds: Mapped[float | None]
    progress_metrics: Mapped[dict[str, Any] | None]
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int]
    heartbeat_at: Mapped[datetime | None]
    worker_host: Mapped[str | None] = mapped_column(String(255))
    worker_pid: Mapped[int | None]
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    error: Mapped[str | None] = mapped_column(Text)
    out_dir: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    runs: Mapped[list[Run]] = relationship(
        back_populates="job", cascade="all, delete-orphan", order_by="Run.id", passive_deletes=True
    )
    units: Mapped[list[JobUnit]] = relationship(
        back_populates="job", cascade="all, delete-orphan", order_by="JobUnit.position", passive_deletes=True
    )


class JobUnit(Base):
    """One unit of a job (:mod:`models.units`): a generator, a filter, a classifier or the final assembly.

    Claimed like a job (a compare-and-set on ``status`` and ``attempts``), heartbeated by the worker that runs
    it, and published to the job's queue (``enqueued_at``) once every unit in ``deps`` has succeeded.
    """

    __tablename__ = "job_units"
    __table_args__ = (UniqueConstraint("job_id", "key"), Index("ix_job_units_job_status", "job_id", "status"))

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(12))
    stage: Mapped[str] = mapped_column(String(200))
    position: Mapped[int]
    deps: Mapped[list[Any]]
    status: Mapped[str] = mapped_column(String(12))
    attempts: Mapped[int] = mapped_column(default=0)
    worker_host: Mapped[str | None] = mapped_column(String(255))
    worker_pid: Mapped[int | None]
    heartbeat_at: Mapped[datetime | None]
    enqueued_at: Mapped[datetime | None]
    message_id: Mapped[str | None] = mapped_column(String(64))
    """The Celery task id of its latest message: revoked once another process took the unit or the job ended."""
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    step: Mapped[int | None]
    total: Mapped[int | None]
    eta_seconds: Mapped[float | None]
    resumed_step: Mapped[int | None]
    """The step the latest attempt's training picked up from (a checkpoint), if it did."""
    error: Mapped[str | None] = mapped_column(Text)

    job: Mapped[Job] = relationship(back_populates="units")


class JobEvent(Base):
    """An append-only log of what happened to a job; ``GET /jobs/{id}/events`` streams it."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    data: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Run(Base):
    """One classifier trained for an arm and a seed, with its headline metrics as columns."""

    __tablename__ = "runs"
    __table_args__ = (UniqueConstraint("job_id", "run_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[str] = mapped_column(String(100))
    arm: Mapped[str] = mapped_column(String(30), index=True)
    generator: Mapped[str | None] = mapped_column(String(50))
    seed: Mapped[int]
    accuracy: Mapped[float | None]
    macro_f1: Mapped[float | None]
    balanced_accuracy: Mapped[float | None]
    auc: Mapped[float | None]
    best_epoch: Mapped[int | None]
    epochs_trained: Mapped[int | None]
    record: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    job: Mapped[Job] = relationship(back_populates="runs")
    class_metrics: Mapped[list[RunClassMetric]] = relationship(
        back_populates="run", cascade="all, delete-orphan", order_by="RunClassMetric.class_index"
    )


class RunClassMetric(Base):
    """Per-class sensitivity, specificity, precision and F1 of one run."""

    __tablename__ = "run_class_metrics"
    __table_args__ = (UniqueConstraint("run_pk", "class_index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_pk: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    class_index: Mapped[int]
    class_name: Mapped[str] = mapped_column(String(200))
    support: Mapped[int]
    sensitivity: Mapped[float | None]
    specificity: Mapped[float | None]
    precision: Mapped[float | None]
    f1: Mapped[float | None]

    run: Mapped[Run] = relationship(back_populates="class_metrics")


class Sample(Base):
    """A materialised PNG: a real training image, a synthetic one, or a GenMix mix of two parents."""

    __tablename__ = "samples"
    __table_args__ = (
        UniqueConstraint("job_id", "source_key"),
        Index("ix_samples_job_kind_label", "job_id", "kind", "label"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(12))
    source_key: Mapped[str] = mapped_column(String(100))
    """Where it came from, unique per job: ``real:12``, ``synthetic:dcgan:0:5``, ``genmix:dcgan:0:3``."""
    label: Mapped[int]
    """Class index; for GenMix, the class with the largest soft-label weight."""
    soft_label: Mapped[list[Any] | None]
    lam: Mapped[float | None]
    partner_pool: Mapped[str | None] = mapped_column(String(12))
    parent_real_id: Mapped[int | None] = mapped_column(ForeignKey("samples.id", ondelete="SET NULL"))
    parent_partner_id: Mapped[int | None] = mapped_column(ForeignKey("samples.id", ondelete="SET NULL"))
    generator: Mapped[str | None] = mapped_column(String(50))
    seed: Mapped[int | None]
    source_index: Mapped[int]
    width: Mapped[int]
    height: Mapped[int]
    path: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Artifact(Base):
    """A file a job wrote (figure, results, synthetic set, export, weights, checkpoint); served by id only."""

    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("job_id", "path"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20), index=True)
    name: Mapped[str] = mapped_column(String(500))
    path: Mapped[str] = mapped_column(String(500))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(100))
    meta: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IdempotencyKey(Base):
    """``Idempotency-Key`` of a ``POST /jobs``: the same key and body return the same job."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("owner", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(255))
    request_sha256: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
