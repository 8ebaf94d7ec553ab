"""Device, seed and dtype choices live here and nowhere else."""

from __future__ import annotations

import random
from contextlib import AbstractContextManager as ContextManager
from contextlib import nullcontext

import numpy as np
import torch

DTYPE = torch.float32
"""Storage dtype of every float tensor the science code creates."""


def pick_device(preference: str = "auto", auto: str = "auto") -> torch.device:
    """Resolve ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` to a device.

    ``auto`` means ``auto``'s value: the machine's choice (the service's ``device`` setting, so a worker can be
    pinned without code changes); when that is ``auto`` too, CUDA when present, else the CPU.
    """
    if preference == "auto":
        preference = auto
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {preference!r} requested but CUDA is not available")
    return device


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) for a reproducible run."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def torch_rng(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A private torch RNG, so one component's randomness never disturbs another's."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def autocast(device: torch.device, enabled: bool = True) -> ContextManager:
    """bf16 autocast on CUDA when enabled; a no-op elsewhere (CPU runs stay float32)."""
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return nullcontext()


def configure_threads(threads: int | None = None) -> None:
    """Use ``threads`` intra-op torch threads (the ``torch_threads`` setting; useful when several workers share a
    machine); ``None`` or 0 leaves torch's default."""
    if threads:
        torch.set_num_threads(int(threads))
