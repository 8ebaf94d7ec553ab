"""Every list of science names, written once: arms, generators, classifiers, profiles, partner pools, splits.

Torch-free on purpose: the API validates requests against these, and the science registries are keyed by
them (``tests/unit/test_names.py`` checks that every registry covers exactly these names).
"""

from __future__ import annotations

from typing import Literal, get_args

Arm = Literal["baseline", "mixup", "augmix", "generative", "genmix"]
GeneratorName = Literal["dcgan", "stylegan", "diffusion", "textual_inversion"]
ClassifierName = Literal["smallcnn", "resnet18", "vgg16", "efficientnet_lite0"]
Profile = Literal["quick", "paper", "pretrained"]
PartnerPool = Literal["real+synthetic", "synthetic"]
Device = Literal["auto", "cpu", "cuda"]
SplitName = Literal["train", "val", "test"]

ARMS: tuple[Arm, ...] = get_args(Arm)
GENERATIVE_ARMS: tuple[Arm, ...] = ("generative", "genmix")
"""Arms that train on a generator's synthetic images (one classifier per generator)."""
GENERATORS: tuple[GeneratorName, ...] = get_args(GeneratorName)
CLASSIFIERS: tuple[ClassifierName, ...] = get_args(ClassifierName)
PROFILES: tuple[Profile, ...] = get_args(Profile)
PARTNER_POOLS: tuple[PartnerPool, ...] = get_args(PartnerPool)
DEVICES: tuple[Device, ...] = get_args(Device)
SPLITS: tuple[SplitName, ...] = get_args(SplitName)
