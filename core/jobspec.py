"""What ``POST /jobs`` accepts: the experiment spec (:class:`models.spec.ExperimentSpec`, the one definition
every entrance shares) plus the fields that only the service has: the dataset, sample PNGs and the queue."""

from __future__ import annotations

from pydantic import Field

from core.names import Queue
from core.settings import Settings
from models.spec import ExperimentSpec


class JobCreate(ExperimentSpec):
    """An experiment on one uploaded dataset. Explicit settings override the profile."""

    dataset_id: str = Field(max_length=64)
    samples_per_class: int | None = Field(
        None, ge=0, le=10_000, description="PNGs materialised per class and kind (capped by the server)"
    )
    queue: Queue | None = Field(None, description="worker queue; default from the device / server setting")

    def resolve_queue(self, settings: Settings) -> str:
        """An explicit queue, else the device's (``cuda`` → gpu, ``cpu`` → cpu), else the server's default."""
        if self.queue is not None:
            return self.queue
        return {"cuda": "gpu", "cpu": "cpu"}.get(self.device, settings.default_queue)


def with_server_settings(spec: ExperimentSpec, settings: Settings, queue: str | None = None) -> ExperimentSpec:
    """The spec as this machine runs it: ``auto`` becomes the server's device (``GENMIX_DEVICE``), a ``cpu``
    queue's worker stays on the CPU, and Textual Inversion starts from the server's pretrained pipeline
    (``GENMIX_TI_PRETRAINED``) unless the spec names one."""
    device = "cpu" if queue == "cpu" else (settings.device if spec.device == "auto" else spec.device)
    generator_settings = {name: dict(values) for name, values in spec.generator_settings.items()}
    if "textual_inversion" in spec.trained_generators and settings.ti_pretrained:
        generator_settings.setdefault("textual_inversion", {}).setdefault("pretrained_dir", settings.ti_pretrained)
    return spec.model_copy(update={"device": device, "generator_settings": generator_settings})
