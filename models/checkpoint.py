"""Files every trainer writes: safetensors weights, JSON configs and resumable training checkpoints.

Why here: each generator and the classifier loop need the same three things — weights that load without
unpickling, writes that a crash can never leave half-done, and a checkpoint to resume from — so they are
written once.

Every write goes to a temporary name in the target folder and is moved into place with
:func:`os.replace`, so a reader sees the old file or the new one, never a torn one. A training checkpoint
is one ``ckpt-{step}.safetensors`` (all tensors: weights, optimiser moments, RNG states) plus one
``ckpt-{step}.json`` (step, config, optimiser scalars) written *after* it: the JSON is the commit mark,
so a checkpoint without its JSON is ignored on resume.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

WEIGHTS_SUFFIX = ".safetensors"
_CKPT_RE = re.compile(r"^ckpt-(\d{8,})\.json$")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success move it onto ``path``, on error delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Write a flat name -> tensor mapping as safetensors, atomically (tensors are copied to CPU first)."""
    cpu = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(cpu, str(tmp))


def read_tensors(path: Path, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    return load_file(str(path), device=str(torch.device(device)))


def save_weights(module: torch.nn.Module, path: Path) -> None:
    """A module's ``state_dict`` (parameters and buffers) as safetensors."""
    write_tensors(path, module.state_dict())


def load_weights(module: torch.nn.Module, path: Path) -> None:
    """Load weights written by :func:`save_weights` (strict: every key must match)."""
    device = next(module.parameters()).device
    module.load_state_dict(read_tensors(path, device), strict=True)


def prefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}/{name}": t for name, t in tensors.items()}


def unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    start = f"{prefix}/"
    return {name[len(start) :]: t for name, t in tensors.items() if name.startswith(start)}


def optimizer_state(optimizer: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimiser's ``state_dict`` into tensors (for safetensors) and JSON-able scalars."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param_id, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}/state/{param_id}/{key}"] = value
            else:
                scalars.setdefault(str(param_id), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def load_optimizer_state(
    optimizer: torch.optim.Optimizer, prefix: str, tensors: dict[str, torch.Tensor], meta: dict
) -> None:
    """Inverse of :func:`optimizer_state`."""
    state: dict[int, dict[str, Any]] = {}
    for param_id, entries in meta["scalars"].items():
        state.setdefault(int(param_id), {}).update(entries)
    for name, value in unprefixed(prefix, tensors).items():
        _, param_id, key = name.split("/", 2)
        state.setdefault(int(param_id), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


@dataclass(frozen=True)
class Checkpoint:
    """One training checkpoint as read back: ``tensors`` on the requested device, ``meta`` from JSON."""

    step: int
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]


class CheckpointDir:
    """Numbered, atomically written training checkpoints in one folder; the newest ``keep`` are kept."""

    def __init__(self, directory: Path, keep: int = 2) -> None:
        self.directory = Path(directory)
        self.keep = max(1, keep)

    def _paths(self, step: int) -> tuple[Path, Path]:
        stem = self.directory / f"ckpt-{step:08d}"
        return stem.with_suffix(WEIGHTS_SUFFIX), stem.with_suffix(".json")

    def steps(self) -> list[int]:
        """Steps of the complete checkpoints present, oldest first."""
        if not self.directory.is_dir():
            return []
        found = []
        for entry in self.directory.iterdir():
            match = _CKPT_RE.match(entry.name)
            if match and self._paths(int(match.group(1)))[0].is_file():
                found.append(int(match.group(1)))
        return sorted(found)

    def save(self, step: int, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
        """Write the checkpoint of ``step`` (tensors first, JSON last) and prune older ones."""
        weights, marker = self._paths(step)
        write_tensors(weights, tensors)
        write_json(marker, {**meta, "step": step})
        for old in self.steps()[: -self.keep]:
            old_weights, old_marker = self._paths(old)
            old_marker.unlink(missing_ok=True)
            old_weights.unlink(missing_ok=True)
        return marker

    def latest(self, device: torch.device | str = "cpu") -> Checkpoint | None:
        """The newest complete checkpoint, or ``None`` when there is none."""
        steps = self.steps()
        if not steps:
            return None
        weights, marker = self._paths(steps[-1])
        meta = read_json(marker)
        return Checkpoint(step=int(meta["step"]), tensors=read_tensors(weights, device), meta=meta)


def rng_state(generator: torch.Generator) -> torch.Tensor:
    """A private RNG's state for a checkpoint (a CPU byte tensor, whatever device the generator draws on)."""
    return generator.get_state()


def restore_rng(generator: torch.Generator, state: torch.Tensor, fallback_seed: int) -> bool:
    """Put ``state`` back into ``generator``; returns whether the resume is exact.

    A state only fits a generator of the device type that wrote it (the CPU's Mersenne Twister state and CUDA's
    Philox seed and offset differ in size), so a checkpoint written on another kind of device (a job
    redelivered from a CPU worker to a GPU worker) reseeds from ``fallback_seed`` instead: training goes on,
    but no longer draws exactly what the unbroken run would have.
    """
    state = state.detach().to("cpu", torch.uint8)
    if state.numel() == generator.get_state().numel():
        generator.set_state(state)
        return True
    generator.manual_seed(int(fallback_seed))
    return False


def optimizers_state(optimizers: dict[str, torch.optim.Optimizer]) -> tuple[dict[str, torch.Tensor], dict]:
    """:func:`optimizer_state` of several optimisers, each under its own name as prefix and metadata key."""
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, dict] = {}
    for name, optimizer in optimizers.items():
        opt_tensors, meta[name] = optimizer_state(optimizer, name)
        tensors.update(opt_tensors)
    return tensors, meta


def load_optimizers_state(
    optimizers: dict[str, torch.optim.Optimizer], tensors: dict[str, torch.Tensor], meta: dict
) -> None:
    """Inverse of :func:`optimizers_state` (``meta`` may hold other keys too)."""
    for name, optimizer in optimizers.items():
        load_optimizer_state(optimizer, name, tensors, meta[name])
