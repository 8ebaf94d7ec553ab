"""Registry of generators by name: a new generator is one module here plus one line in ``_MODULES``."""

from __future__ import annotations

import importlib
from typing import Any

import torch

from models.generators.base import Generator

_MODULES: dict[str, str] = {
    "dcgan": "models.generators.dcgan:DCGAN",
    "stylegan": "models.generators.stylegan:StyleGAN",
    "diffusion": "models.generators.diffusion:Diffusion",
    "textual_inversion": "models.generators.textual_inversion:TextualInversion",
}


class UnknownGeneratorError(ValueError):
    """The requested generator name is not registered."""


def available_generators() -> list[str]:
    return sorted(_MODULES)


def generator_class(name: str) -> type[Generator]:
    """The class registered under ``name`` (imported lazily: heavy generators load only when used)."""
    try:
        module_name, class_name = _MODULES[name].split(":")
    except KeyError:
        raise UnknownGeneratorError(
            f"unknown generator {name!r}; available: {', '.join(available_generators())}"
        ) from None
    return getattr(importlib.import_module(module_name), class_name)


def build_generator(
    name: str,
    num_classes: int,
    channels: int,
    image_size: tuple[int, int],
    config: dict[str, Any] | None = None,
    profile: str = "quick",
    device: torch.device | str = "cpu",
    seed: int = 0,
) -> Generator:
    cls = generator_class(name)
    return cls(num_classes, channels, image_size, config=config, profile=profile, device=device, seed=seed)
