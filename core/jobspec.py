"""What ``POST /jobs`` accepts: the experiment spec (:class:`models.spec.ExperimentSpec`, the one definition
every entrance shares) plus the fields that only the service has: the dataset, sample PNGs and the queue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field

from core.names import Queue
from core.settings import Settings
from models.errors import clip
from models.spec import FILE_SETTINGS, ExperimentSpec


class CheckpointError(ValueError):
    """A job names a checkpoint the server does not have; the message says which and where to look."""


class JobCreate(ExperimentSpec):
    """An experiment on one uploaded dataset. Explicit settings override the profile."""

    # Strict types at the network door: "3" or true is not an integer, as the OpenAPI schema says.
    model_config = ConfigDict(**ExperimentSpec.model_config, strict=True)

    dataset_id: str = Field(max_length=64)
    samples_per_class: int | None = Field(
        None, ge=0, le=10_000, description="PNGs materialised per class and kind (capped by the server)"
    )
    queue: Queue | None = Field(None, description="worker queue; default from the device / server setting")
    extends: str | None = Field(
        None,
        max_length=36,
        description="id of an ended job of yours on the same dataset whose finished runs this job reuses: it may "
        "add seeds, arms, generators, classifier seeds, GenMix list values or a filter; every other setting "
        "must be that job's",
    )

    def resolve_queue(self, settings: Settings) -> str:
        """An explicit queue, else the device's (``cuda`` → gpu, ``cpu`` → cpu), else the server's default."""
        if self.queue is not None:
            return self.queue
        return {"cuda": "gpu", "cpu": "cpu"}.get(self.device, settings.default_queue)


def _file_entries(spec: ExperimentSpec) -> list[tuple[str, dict[str, Any], str]]:
    """(kind, settings, key) of every file setting the spec sets."""
    found = [("classifier", spec.classifier_settings, key) for key in FILE_SETTINGS["classifier"]]
    for name, values in spec.generator_settings.items():
        found += [(name, values, key) for key in FILE_SETTINGS.get(name, ())]
    return [(kind, values, key) for kind, values, key in found if values.get(key) is not None]


def resolve_checkpoint(settings: Settings, kind: str, key: str, name: str) -> Path:
    """The server's checkpoint ``name`` (a file for ``weights``, a folder for ``pretrained_dir``) under
    ``GENMIX_CHECKPOINT_DIR``; raises :class:`CheckpointError` in words a client can act on (no server path)."""
    where = f"{'classifier_settings' if kind == 'classifier' else f'generator_settings.{kind}'}.{key}"
    if settings.checkpoint_dir is None:
        raise CheckpointError(f"{where}: this server offers no checkpoints (GENMIX_CHECKPOINT_DIR is not set)")
    path = Path(settings.checkpoint_dir) / name
    found = path.is_file() if key == "weights" else path.is_dir()
    if "/" in name or name.startswith(".") or not found:
        raise CheckpointError(f"{where}: the server has no checkpoint {clip(name, 60)!r}; ask its operator which exist")
    return path


def checkpoint_problems(spec: ExperimentSpec, settings: Settings) -> list[str]:
    """At the door: names that cannot resolve here. Skipped when the checkpoint folder is set but not visible on
    this machine (the workers resolve, and refuse, then)."""
    directory = settings.checkpoint_dir
    if directory is not None and not Path(directory).is_dir():
        return []
    problems = []
    for kind, values, key in _file_entries(spec):
        try:
            resolve_checkpoint(settings, kind, key, values[key])
        except CheckpointError as exc:
            problems.append(str(exc))
    return problems


def with_server_settings(
    spec: ExperimentSpec, settings: Settings, queue: str | None = None, *, local_files: bool = False
) -> ExperimentSpec:
    """The spec as this machine runs it: ``auto`` becomes the server's device (``GENMIX_DEVICE``), a ``cpu``
    queue's worker stays on the CPU, and Textual Inversion starts from the server's pretrained pipeline
    (``GENMIX_TI_PRETRAINED``) unless the spec names one.

    Weights come from the server, never from a request: a request's file settings (classifier ``weights``,
    ``pretrained_dir``) are checkpoint names, resolved here against ``GENMIX_CHECKPOINT_DIR``, and whether Textual
    Inversion (or torchvision, for a pretrained vgg16/resnet18 without a file) may download is
    ``GENMIX_ALLOW_DOWNLOADS``. ``local_files`` (``genmix run``, the machine's own
    user) keeps the paths the spec names as they are.
    """
    device = "cpu" if queue == "cpu" else (settings.device if spec.device == "auto" else spec.device)
    classifier_settings = dict(spec.classifier_settings)
    generator_settings = {name: dict(values) for name, values in spec.generator_settings.items()}
    if not local_files:
        classifier_settings["allow_download"] = settings.allow_downloads  # torchvision's ImageNet weights too
        for kind, values, key in _file_entries(spec):
            target = classifier_settings if kind == "classifier" else generator_settings[kind]
            target[key] = str(resolve_checkpoint(settings, kind, key, values[key]))
    if "textual_inversion" in spec.trained_generators:
        ti = generator_settings.setdefault("textual_inversion", {})
        if settings.ti_pretrained:
            ti.setdefault("pretrained_dir", settings.ti_pretrained)
        if local_files:
            ti.setdefault("allow_download", settings.allow_downloads)
        else:
            ti["allow_download"] = settings.allow_downloads
    return spec.model_copy(update={"device": device, "classifier_settings": classifier_settings,
                                   "generator_settings": generator_settings})  # fmt: skip
