"""Names the API validates against, kept here because the science registries import torch.

``tests/service/test_catalog.py`` checks these lists against ``models`` so they cannot drift apart.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, get_args

Arm = Literal["baseline", "mixup", "augmix", "generative", "genmix"]
Profile = Literal["quick", "paper"]
GeneratorName = Literal["dcgan", "stylegan", "diffusion", "textual_inversion"]
ClassifierName = Literal["smallcnn", "resnet18", "vgg16"]
PartnerPool = Literal["real+synthetic", "synthetic"]
Queue = Literal["cpu", "gpu"]
Device = Literal["auto", "cpu", "cuda"]

ARMS: tuple[str, ...] = get_args(Arm)
GENERATIVE_ARMS = ("generative", "genmix")
PROFILES: tuple[str, ...] = get_args(Profile)
GENERATORS: tuple[str, ...] = get_args(GeneratorName)
CLASSIFIERS: tuple[str, ...] = get_args(ClassifierName)
PARTNER_POOLS: tuple[str, ...] = get_args(PartnerPool)
QUEUES: tuple[str, ...] = get_args(Queue)
SPLITS = ("train", "val", "test")


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


TERMINAL = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled})


class SampleKind(StrEnum):
    real = "real"
    synthetic = "synthetic"
    genmix = "genmix"


ARTIFACT_KINDS = (
    "figure",
    "results",
    "synthetic",
    "genmix_export",
    "generator",
    "checkpoint",
    "record",
    "config",
)
