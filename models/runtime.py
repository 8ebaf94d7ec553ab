"""Device, seed and dtype choices live here and nowhere else."""

from __future__ import annotations

import os
import platform
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


def configure_device(device: torch.device | str) -> torch.device:
    """Switch on the CUDA speed settings for a run on ``device``; a no-op on the CPU (CPU results stay as they were).

    On CUDA: ``cudnn.benchmark`` (the fastest convolution algorithm per shape; the shapes of a training loop
    repeat, so the search pays once), and TF32 matrix multiplies and convolutions (float32 storage, 10-bit
    mantissa products on Ampere and later). Both make CUDA runs faster, not bit-reproducible across machines;
    CPU runs are unaffected. Called by :func:`place_model`, so every trainer that places its networks gets them.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.set_float32_matmul_precision("high")
    return device


def memory_format(device: torch.device | str) -> torch.memory_format:
    """``channels_last`` on CUDA (what tensor cores want for convolutions), the default layout elsewhere."""
    return torch.channels_last if torch.device(device).type == "cuda" else torch.contiguous_format


def place_model(module: torch.nn.Module, device: torch.device | str) -> torch.nn.Module:
    """Move ``module`` to ``device`` (channels_last on CUDA) after :func:`configure_device`."""
    device = configure_device(device)
    if device.type == "cuda":
        return module.to(device=device, memory_format=torch.channels_last)
    return module.to(device)


def as_input(x: torch.Tensor) -> torch.Tensor:
    """An image batch (N, C, H, W) in the layout its device's convolutions want: channels_last on CUDA (a no-op
    when it already is), unchanged elsewhere."""
    if x.ndim == 4 and x.device.type == "cuda":
        return x.contiguous(memory_format=torch.channels_last)
    return x


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


def device_name(device: torch.device | str = "cpu") -> str:
    """What a benchmark record names as its machine: the CUDA card, else the CPU model and its core count."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return platform.processor() or "cpu"
