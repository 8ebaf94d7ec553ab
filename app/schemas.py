"""Request and response models of the REST API (pydantic v2)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.jobstate import JobStatus
from core.names import Queue
from models.names import Arm, ClassifierName, Device, GeneratorName, PartnerPool, Profile

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """Every list: one page of ``data`` and the ``count`` of all matching items."""

    data: list[T]
    count: int


# --- datasets --------------------------------------------------------------------------------


class DatasetOut(BaseModel):
    id: str
    name: str
    format: str
    classes: list[str]
    counts: dict[str, dict[str, int]] = Field(description="images per split and class")
    channels: int
    image_size: tuple[int, int] = Field(description="(height, width)")
    num_images: int
    sha256: str = Field(description="sha256 of the uploaded file")
    size_bytes: int
    created_at: datetime


# --- jobs ------------------------------------------------------------------------------------


class ClassifierSpec(BaseModel):
    """A classifier by name; any other key overrides that profile's hyperparameter (``epochs``, ``lr``...)."""

    model_config = ConfigDict(extra="allow")

    name: ClassifierName = "smallcnn"


class JobCreate(BaseModel):
    """An experiment: generators x arms x seeds on one dataset. Explicit settings override the profile."""

    model_config = ConfigDict(extra="forbid")

    dataset_id: str
    generators: list[GeneratorName] = Field(default_factory=lambda: ["dcgan"], max_length=8)
    arms: list[Arm] = Field(
        default_factory=lambda: ["baseline", "mixup", "augmix", "generative", "genmix"], min_length=1
    )
    synthetic_ratio: float = Field(0.5, gt=0.0, le=10.0)
    alpha: float = Field(0.3, gt=0.0, le=100.0)
    beta: float = Field(1.0, gt=0.0, le=100.0)
    partner_pool: PartnerPool = "real+synthetic"
    class_balanced: bool = False
    mix_prob: float = Field(1.0, ge=0.0, le=1.0)
    classifier: ClassifierName | ClassifierSpec = "smallcnn"
    generator: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="per-generator overrides of the profile, e.g. {'dcgan': {'iterations': 500}}",
    )
    profile: Profile = "quick"
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1, max_length=20)
    samples_per_class: int | None = Field(None, ge=0, description="PNGs materialised per class and kind")
    figures: bool = True
    device: Device = "auto"
    queue: Queue | None = Field(None, description="worker queue; default from the device / server setting")

    @field_validator("arms", "generators", "seeds")
    @classmethod
    def _unique(cls, value: list[Any]) -> list[Any]:
        if len(set(value)) != len(value):
            raise ValueError("must not repeat items")
        return value

    @field_validator("seeds")
    @classmethod
    def _non_negative(cls, value: list[int]) -> list[int]:
        if any(seed < 0 or seed > 2**31 - 1 for seed in value):
            raise ValueError("seeds must be between 0 and 2**31-1")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> JobCreate:
        needs_generator = any(arm in ("generative", "genmix") for arm in self.arms)
        if needs_generator and not self.generators:
            raise ValueError("the generative and genmix arms need at least one generator")
        unknown = set(self.generator) - set(self.generators)
        if unknown:
            raise ValueError(f"generator overrides for {sorted(unknown)}, which are not in generators")
        return self

    def classifier_config(self) -> dict[str, Any]:
        if isinstance(self.classifier, str):
            return {"name": self.classifier}
        return self.classifier.model_dump()


class ProgressOut(BaseModel):
    stage: str | None
    stage_index: int | None
    stage_count: int | None
    step: int | None
    total: int | None
    eta_seconds: float | None
    metrics: dict[str, Any] | None


class ClassMetricOut(BaseModel):
    class_index: int
    class_name: str
    support: int
    sensitivity: float | None
    specificity: float | None
    precision: float | None
    f1: float | None


class RunOut(BaseModel):
    run_id: str
    arm: str
    generator: str | None
    seed: int
    accuracy: float | None
    macro_f1: float | None
    balanced_accuracy: float | None
    auc: float | None
    best_epoch: int | None
    epochs_trained: int | None
    per_class: list[ClassMetricOut]
    confusion_matrix: list[list[int]] | None


class Stat(BaseModel):
    """Mean and sample standard deviation over seeds (0 for one seed); ``n`` counts the defined values."""

    mean: float | None
    std: float | None
    n: int


class ClassSummary(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    class_name: str = Field(alias="class")
    sensitivity: Stat
    specificity: Stat


class SummaryRow(BaseModel):
    """One row of the paper's Table 1 (same code as the CLI's ``report.md``): metrics over one method's seeds."""

    label: str
    arm: str
    generator: str | None
    seeds: list[int]
    accuracy: Stat
    macro_f1: Stat
    balanced_accuracy: Stat
    auc: Stat
    per_class: list[ClassSummary]


class ResultsOut(BaseModel):
    runs: list[RunOut]
    summary: list[SummaryRow]


class JobOut(BaseModel):
    id: str
    dataset_id: str | None
    status: JobStatus
    queue: str
    spec: dict[str, Any]
    progress: ProgressOut
    attempts: int
    max_attempts: int
    cancel_requested: bool
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    results: ResultsOut | None = Field(None, description="present on GET /jobs/{id}")
    links: dict[str, str]


class EventOut(BaseModel):
    id: int
    kind: str
    data: dict[str, Any]
    created_at: datetime


# --- samples and artifacts ----------------------------------------------------------------------


class SampleOut(BaseModel):
    id: int
    job_id: str
    kind: str
    label: int
    class_name: str | None
    soft_label: list[float] | None
    lam: float | None
    partner_pool: str | None
    parent_real_id: int | None
    parent_partner_id: int | None
    generator: str | None
    seed: int | None
    width: int
    height: int
    url: str


class ArtifactOut(BaseModel):
    id: int
    job_id: str
    kind: str
    name: str
    size_bytes: int
    media_type: str
    meta: dict[str, Any]
    created_at: datetime
    url: str


class Health(BaseModel):
    status: str
    database: str
    version: str
