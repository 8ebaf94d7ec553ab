"""The service's own lists of names: worker queues, sample kinds, artifact kinds (science names: models.names)."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, get_args

Queue = Literal["cpu", "gpu"]
QUEUES: tuple[Queue, ...] = get_args(Queue)


class SampleKind(StrEnum):
    real = "real"
    synthetic = "synthetic"
    genmix = "genmix"


ARTIFACT_KINDS = ("figure", "results", "synthetic", "genmix_export", "generator", "checkpoint", "record", "config")
