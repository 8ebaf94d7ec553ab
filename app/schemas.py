"""Request and response models of the REST API (pydantic v2)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from core.jobspec import JobCreate as JobCreate  # POST /jobs: the experiment spec plus service fields
from core.jobstate import JobStatus
from models.verdict import FEW_SEEDS, MIN_SEED_UNITS, ONE_RUN, PLAN_EFFECT

T = TypeVar("T")


class ErrorOut(BaseModel):
    """Every refusal: what is wrong, in one sentence (client input it quotes is clipped)."""

    detail: str


class Problem(BaseModel):
    """One validation problem: where (``loc``), what (``msg``); ``input`` only when short and finite."""

    type: str
    loc: list[str | int]
    msg: str
    input: Any = None


class ValidationErrorOut(BaseModel):
    """422: a list of problems (request validation) or one sentence (a dataset the reader refused)."""

    detail: str | list[Problem]


class Page(BaseModel, Generic[T]):
    """Every list: one page of ``data`` and the ``count`` of all matching items."""

    data: list[T]
    count: int


# --- datasets --------------------------------------------------------------------------------


class DatasetOut(BaseModel):
    id: str
    name: str
    format: str = Field(description="the layout it arrived in: npz, imagefolder or csv (files with labels.csv)")
    classes: list[str]
    counts: dict[str, dict[str, int]] = Field(description="images per split and class")
    patients: dict[str, int] | None = Field(
        None, description="distinct patients per split, when every image's patient was known (splits carved by patient)"
    )
    decode: dict[str, Any] | None = Field(
        None,
        description="how pixels became images: window (name, width, level), frames (multi-frame rule), percentiles "
        "(other modalities), roi (mode, margin), image_size, and images per rule; null for npz and plain folders",
    )
    channels: int
    image_size: list[int] = Field(min_length=2, max_length=2, description="[height, width]")
    num_images: int
    sha256: str = Field(description="sha256 of the uploaded file")
    size_bytes: int
    created_at: datetime


# --- jobs ------------------------------------------------------------------------------------


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
    variant: str | None = Field(
        None,
        description="'tuned': GenMix settings chosen per seed on validation; 'filtered': on the synthetic "
        "images the filter kept",
    )
    seeds: list[int] = Field(description="each run's seed (repeated when a seed has several classifier seeds)")
    classifier_seeds: list[int] = Field([], description="each run's classifier seed")
    accuracy: Stat
    macro_f1: Stat
    balanced_accuracy: Stat
    auc: Stat
    per_class: list[ClassSummary]


class VerdictOut(BaseModel):
    """One GenMix arm against one reference: mean paired macro-F1 difference (fractions, not points), its 95 %
    interval, p-values and minimum detectable effect, and the line a lab reads first."""

    target: str
    reference: str
    line: str = Field(description='e.g. "GenMix (StyleGAN) helps vs Baseline (Real): +2.4 macro F1 [0.8, 4.1]"')
    verdict: str = Field(
        description=f"helps, hurts, no evidence; or no verdict: {ONE_RUN} (each arm ran once) or {FEW_SEEDS} (fewer "
        f"than {MIN_SEED_UNITS} seed units)"
    )
    pairs: int = Field(description="(seed, classifier seed) pairs both arms ran")
    seeds: int
    test_images: int
    mean_diff: float
    ci_low: float
    ci_high: float
    se: float
    p_value: float
    p_holm: float
    mde: float = Field(description="minimum detectable effect at 80 % power (Holm's strictest level)")
    spread: str = Field(description="what the interval covers")
    units: int = Field(description="seed units: generator seeds, or one generator seed's classifier seeds")
    plan: dict[str, Any] | None = Field(
        None,
        description=f"seed units that would detect {PLAN_EFFECT * 100:g} points at 80 % power from this run's variance "
        "parts (seed_units; null when the test set's part alone keeps the MDE above it: test_floor_mde); null for one "
        "run",
    )


class VerdictsOut(BaseModel):
    """Every comparison of the job (Holm-adjusted over all of them), and those that could not be made."""

    lines: list[str]
    plans: list[str] = Field([], description="what a study would need to see the planned effect, where this one cannot")
    comparisons: list[VerdictOut]
    skipped: list[dict[str, Any]]
    method: str


class ReferenceOut(BaseModel):
    """A real-data augmentation (MixUp, AugMix) against the baseline, paired by seed (fractions, not points): what
    the lab's usual augmentation does on its classifier; outside the verdicts' Holm family."""

    target: str
    reference: str
    metric: str = Field(description="macro_f1 or auc")
    pairs: int
    mean_diff: float
    interval: tuple[float, float] | None = Field(description="95 % t interval over the pairs; null for one pair")
    wins: int
    p_value: float | None = Field(description="paired t-test, uncorrected; null without a spread")
    line: str = Field(
        description='e.g. "AugMix (Real) vs Baseline (Real): +1.2 AUC [-0.6, +2.9] over 10 paired runs …"'
    )


class ResultsOut(BaseModel):
    verdicts: VerdictsOut | None = Field(None, description="does GenMix help? (first: what a lab reads first)")
    references: list[ReferenceOut] = Field([], description="MixUp and AugMix against the baseline, where they ran")
    runs: list[RunOut]
    summary: list[SummaryRow]
    dataset_decode: dict[str, Any] | None = Field(
        None, description="the dataset's decode choices when the job was created (see DatasetOut.decode)"
    )


class UnitOut(BaseModel):
    """One unit of a job (a generator, a filter, a classifier run, the final assembly) and where it runs."""

    key: str
    kind: str
    stage: str
    status: str
    deps: list[str]
    attempts: int
    host: str | None
    step: int | None
    total: int | None
    eta_seconds: float | None
    resumed_step: int | None
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None


class UnitsSummaryOut(BaseModel):
    total: int
    counts: dict[str, int]
    hosts: list[str] = Field(description="hosts running a unit of the job now")
    eta_seconds: float | None = Field(description="the whole job's estimate from its units (null until one finished)")


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
    units: list[UnitOut] | None = Field(None, description="present on GET /jobs/{id}: the job's units")
    units_summary: UnitsSummaryOut | None = Field(None, description="present on GET /jobs/{id}")
    design_note: str | None = Field(
        None,
        description=f"said when the job's seeds cannot reach a GenMix verdict (under {MIN_SEED_UNITS} seed units)",
    )
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
