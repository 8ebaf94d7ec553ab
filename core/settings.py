"""The one settings object of the service (API, workers, CLI share it); each field reads ``GENMIX_<NAME>``.

With nothing configured the service is *embedded*: SQLite (WAL) and kombu's filesystem broker under
``state_dir``, which suits one machine. Production sets ``GENMIX_DATABASE_URL=postgresql+psycopg://...`` and
``GENMIX_BROKER_URL=redis://...`` and points ``GENMIX_ARTIFACT_ROOT`` at a filesystem every worker shares.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.medmnist import default_cache_dir

_PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = _PACKAGE_DIR.parent


def default_data_dir() -> Path:
    """Where dataset files (``breastmnist.npz``...) live: the repository's sibling ``../shared/datasets``."""
    return (REPO_ROOT / ".." / "shared" / "datasets").resolve()


def default_state_dir() -> Path:
    """Where the embedded service keeps its database, broker folder and artifacts."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "genmix"


class Settings(BaseSettings):
    """Configuration for every GenMix service process."""

    model_config = SettingsConfigDict(
        env_prefix="GENMIX_", extra="ignore", validate_default=True, use_attribute_docstrings=True
    )

    state_dir: Path = Field(default_factory=default_state_dir)
    """Embedded state: ``genmix.db``, ``broker/``, and ``artifacts/`` unless ``artifact_root`` is set."""
    data_dir: Path = Field(default_factory=default_data_dir)
    """Dataset files the demo and tests read (never written to)."""
    database_url: str = ""
    """SQLAlchemy URL; empty means ``sqlite:///<state_dir>/genmix.db``."""
    broker_url: str = ""
    """Celery broker; empty: kombu's filesystem transport under ``<state_dir>/broker`` (one machine only)."""
    artifact_root: Path | None = None
    """Datasets, job outputs and sample PNGs; must be shared by the API and every worker."""
    redis_key_prefix: str = ""
    """Prefix for every broker key in Redis (lets several deployments or test sessions share one Redis)."""

    default_queue: Literal["cpu", "gpu"] = "cpu"
    """Queue for jobs whose spec names neither a queue nor a device."""
    visibility_timeout: int = 7 * 24 * 3600
    """Seconds before Redis redelivers an unacknowledged job: must exceed the longest job."""
    max_attempts: int = 3
    """Deliveries a job may take (worker crashes included) before it is marked failed."""
    heartbeat_interval: float = 10.0
    stale_after: float = 120.0
    """A running job whose heartbeat is older than this (and whose worker is not alive here) is orphaned."""
    sweep_interval: float = Field(30.0, gt=0)
    """How often every live worker sweeps: it re-queues ``running`` jobs whose worker is gone and re-publishes
    ``queued`` jobs the broker holds no message for (a Redis restart, a publish that failed)."""
    requeue_queued_after: float = Field(60.0, ge=0)
    """A ``queued`` job is re-published by the sweep only once it is this old (its first publish had time)."""
    db_retry_seconds: float = Field(60.0, ge=0)
    """How long a running job's bookkeeping write (stage, result, artifact) retries a lost database before the
    delivery gives up; training goes on meanwhile and progress writes are skipped until the database is back."""
    db_final_retry_seconds: float = Field(300.0, ge=0)
    """How long the final status write of a job retries a lost database; past it the job is left to the sweep."""
    stale_file_after: float = Field(1800.0, ge=0)
    """Upload parts (``uploads/*.part``) and dataset folders without a database row that nobody has touched for
    this long are deleted (at ``genmix serve`` start and by the worker sweep): what a killed API left behind."""
    cancel_poll_interval: float = 1.0
    """How often a running job reads its cancel flag from the database."""
    progress_interval: float = 1.0
    """Minimum seconds between progress writes to the database."""
    worker_concurrency: int = 1
    worker_preload: bool = True
    """Import torch and the models in the worker parent so each forked one-job child starts warm."""

    upload_max_bytes: int = 4 * 1024**3
    """Largest uploaded file (streamed to disk, never held in memory): a lab-sized npz or zip (100k × 128² gray
    is 1.6 GB of pixels, 20k × 256² 1.3 GB, 20k × 128² RGB 1.0 GB) fits; memory is bounded by the decode budget."""
    zip_max_members: int = 200_000
    zip_max_uncompressed_bytes: int = 4 * 1024**3
    zip_max_ratio: float = 200.0
    """Largest uncompressed/compressed ratio allowed for a zip member over ``zip_ratio_min_bytes``."""
    zip_ratio_min_bytes: int = 1024 * 1024
    image_max_pixels: int = 4096 * 4096
    dataset_max_pixels: int = 2**31
    """Pixel values (× channels) of one data set: 2.1 × 10⁹ holds 100k × 128² gray, 20k × 256², 20k × 128² RGB."""
    image_formats: list[str] = Field(default_factory=lambda: ["PNG", "JPEG", "BMP", "TIFF", "DICOM"])
    """Formats an upload may contain: Pillow's names, and DICOM (read by pydicom; see docs/SERVICE.md)."""
    upload_max_decoded_bytes: int = Field(2 * 1024**3, ge=1)
    """Memory budget for one upload's decoded pixels, charged from headers before decoding (413 beyond it).
    An npz's arrays are read from the file on disk straight into their buffers and stored uncompressed, so its
    peak is about twice its pixels (the arrays and the carved splits); decoded image files about three times
    (decoded images, the stacked arrays, the carved splits)."""
    upload_max_concurrent: int = Field(2, ge=1)
    """Uploads decoded at once per API process; more wait (their files on disk, no pixels in memory)."""
    dataset_max_classes: int = Field(1000, ge=2)
    """Most classes an uploaded dataset may have (checked on the largest label before anything per class)."""
    request_max_bytes: int = Field(256 * 1024, ge=1024)
    """Largest request body on every route but the dataset upload (``POST /jobs``: the spec); 413 beyond it."""
    allowed_hosts: list[str] = Field(default_factory=lambda: ["localhost", "127.0.0.1", "::1", "testserver"])
    """``Host`` values the API answers (JSON list; ``*`` any, ``*.lab.org`` subdomains); others get 400, so links in
    answers never name a host a client made up. Set it to the names clients use (or set ``public_url``)."""
    public_url: str | None = None
    """Base URL for links in answers (``https://genmix.lab.org``); unset: the request's (trusted) host."""
    checkpoint_dir: Path | None = None
    """Folder of checkpoints a job may name (classifier ``weights`` files, diffusion / Textual Inversion
    ``pretrained_dir`` folders): a request names an entry of it, never a path. Unset: requests may name none."""
    allow_downloads: bool = False
    """Whether workers may download ``ti_pretrained`` (a hub id) from the hub, and torchvision's ImageNet weights
    for a pretrained vgg16/resnet18 that names no file; requests never choose this."""

    samples_per_class: int = 8
    """Default number of real, synthetic and GenMix PNGs a job materialises per class."""
    max_samples_per_class: int = 64
    api_key_cache_seconds: float = 15.0
    """How long a checked API key is trusted without a database look-up (a revoked key works this long)."""
    sample_cache_bytes: int = 64 * 1024 * 1024
    """Memory for sample PNGs kept by each API process (samples never change)."""
    sse_poll_interval: float = 0.5
    log_level: str = "INFO"

    device: str = "auto"
    """What a job's ``auto`` device means on this worker (``cpu``, ``cuda``, ``cuda:1``…); ``auto``: CUDA when
    present. Passed to ``models.runtime.pick_device(spec.device, auto=settings.device)``."""
    torch_threads: int | None = Field(default=None, ge=1)
    """Intra-op torch threads per job process; unset: torch's default (``models.runtime.configure_threads``)."""
    cache_dir: Path = Field(default_factory=default_cache_dir)
    """Where downloads (MedMNIST files, under ``medmnist/``) are cached."""
    offline: bool = False
    """Never try the network for datasets: use the cache or ``data_dir``'s copy (``models.medmnist.fetch_medmnist``)."""
    ti_pretrained: str | None = None
    """Stable Diffusion pipeline (local folder, or hub id read from the local HF cache) for every Textual
    Inversion job that sets no ``pretrained_dir`` of its own."""

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        self.state_dir = Path(self.state_dir).expanduser().resolve()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.state_dir / 'genmix.db'}"
        if not self.broker_url:
            self.broker_url = "filesystem://"
        if self.artifact_root is None:
            self.artifact_root = self.state_dir / "artifacts"
        self.artifact_root = Path(self.artifact_root).expanduser().resolve()
        self.data_dir = Path(self.data_dir).expanduser()
        self.cache_dir = Path(self.cache_dir).expanduser()
        return self

    @property
    def artifacts(self) -> Path:
        """``artifact_root`` as a non-optional path."""
        assert self.artifact_root is not None
        return self.artifact_root

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def is_embedded_broker(self) -> bool:
        return self.broker_url.startswith("filesystem")

    @property
    def broker_dir(self) -> Path:
        return self.state_dir / "broker"

    def ensure_dirs(self) -> None:
        """Create the folders the embedded database, broker and artifact store write into."""
        for path in (
            self.artifacts,
            self.artifacts / "uploads",
            self.artifacts / "datasets",
            self.artifacts / "jobs",
        ):
            path.mkdir(parents=True, exist_ok=True)
        if self.is_sqlite:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.is_embedded_broker:
            (self.broker_dir / "queue").mkdir(parents=True, exist_ok=True)
            (self.broker_dir / "processed").mkdir(parents=True, exist_ok=True)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
