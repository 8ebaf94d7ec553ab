"""Device, seed and dtype choices live here and nowhere else."""

from __future__ import annotations

import os
import random
from contextlib import AbstractContextManager as ContextManager
from contextlib import nullcontext

import numpy as np
import torch

DTYPE = torch.float32
"""Storage dtype of every float tensor the science code creates."""


def pick_device(preference: str = "auto") -> torch.device:
    """Resolve ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` to a device (``auto`` takes CUDA when present).

    ``GENMIX_DEVICE`` overrides ``auto`` so a worker can be pinned without code changes.
    """
    if preference == "auto":
        preference = os.environ.get("GENMIX_DEVICE", "auto")
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


def configure_threads() -> None:
    """Respect ``GENMIX_TORCH_THREADS`` (useful when several workers share a machine)."""
    threads = os.environ.get("GENMIX_TORCH_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
