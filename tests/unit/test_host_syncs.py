"""Host round trips per training step: none, except at the steps where a progress report is due.

A host sync is the Python side reading a tensor's value (``item``, ``tolist``, ``bool``/``int``/``float``/
``index``/``format`` of a tensor, ``cpu()``, ``numpy()``) or an op whose output size depends on the data (``nonzero``,
``masked_select``, ``unique``, a boolean-mask index): on a GPU each waits until the device has run everything
queued before it. :class:`HostSyncs` counts both kinds on the CPU, where every test runs, by intercepting them
(a ``TorchFunctionMode`` for the Python reads, a ``TorchDispatchMode`` for the data-dependent ops), and files
each under the training step it happened in: ``should_stop`` is asked once at the start of every step, so each
question opens the next step.

Not counted: reads made by ``torch.optim`` (Adam keeps its step counters on the host on every device unless
``capturable``, so reading them never waits for the GPU), and checks that ATen's CPU kernels make in C++ (e.g.
``one_hot``'s range check, which CUDA does on the device). Where a GPU exists, the CUDA test at the end asks
the device itself, through ``torch.cuda.set_sync_debug_mode``.
"""

from __future__ import annotations

import sys
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from generator_support import bright_dark
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from models.arms import build_arm
from models.classifiers import build_classifier
from models.datasets import Split
from models.generators import generator_class
from models.generators.dcgan import DCGAN
from models.genmix import GenMixer
from models.hooks import TrainHooks
from models.train import REPORT_EVERY, classifier_config, train_classifier

CPU = torch.device("cpu")
NAMES = ["bright", "dark"]

_READS = {
    torch.Tensor.item,
    torch.Tensor.tolist,
    torch.Tensor.__bool__,
    torch.Tensor.__int__,
    torch.Tensor.__float__,
    torch.Tensor.__index__,
    torch.Tensor.cpu,
    torch.Tensor.numpy,
    torch.Tensor.__array__,
    torch.Tensor.__format__,
}
_DATA_DEPENDENT = {
    torch.ops.aten.nonzero,
    torch.ops.aten.masked_select,
    torch.ops.aten._unique2,
    torch.ops.aten.unique_dim,
    torch.ops.aten.unique_consecutive,
    torch.ops.aten.repeat_interleave,
}


def _caller_is_torch_optim() -> bool:
    frame = sys._getframe(2)
    for _ in range(4):  # Tensor.item <- torch.optim.optimizer._get_value <- Adam
        if frame is None:
            return False
        if "/torch/optim/" in frame.f_code.co_filename.replace("\\", "/"):
            return True
        frame = frame.f_back
    return False


class HostSyncs:
    """Counts host syncs per step; ``next_step()`` (wired to ``should_stop``) opens a new step."""

    def __init__(self) -> None:
        self.step = 0  # 0: before the first step
        self.per_step: dict[int, Counter[str]] = {}
        self._inside = 0

    def record(self, name: str) -> None:
        self.per_step.setdefault(self.step, Counter())[name] += 1

    def next_step(self) -> bool:
        self.step += 1
        return False

    def count(self, step: int) -> int:
        return sum(self.per_step.get(step, Counter()).values())

    @contextmanager
    def watching(self) -> Iterator[HostSyncs]:
        counter = self

        class Reads(TorchFunctionMode):
            def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
                if func in _READS and not _caller_is_torch_optim():
                    counter.record(func.__name__)
                    counter._inside += 1
                    try:
                        return func(*args, **(kwargs or {}))
                    finally:
                        counter._inside -= 1
                return func(*args, **(kwargs or {}))

        class DataDependent(TorchDispatchMode):
            def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
                if not counter._inside:
                    packet = func.overloadpacket
                    if packet in _DATA_DEPENDENT and not (packet is torch.ops.aten.repeat_interleave and kwargs):
                        counter.record(str(packet))
                    elif packet is torch.ops.aten.index and any(
                        isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1]
                    ):
                        counter.record("boolean-mask index")
                return func(*args, **(kwargs or {}))

        with Reads(), DataDependent():
            yield self


def test_the_counter_sees_host_reads_and_data_dependent_ops() -> None:
    syncs = HostSyncs()
    x = torch.arange(6.0)
    with syncs.watching():
        x.sum().item()
        bool(x.max() > 1)
        int(x[2])
        x[x > 2]
        torch.nonzero(x)
        x.tolist()
        x.numpy()
        f"{x[0]:.1f}"
        np.asarray(x)
    assert syncs.count(0) == 9, syncs.per_step


def _dark_bright(n: int, size: int = 12) -> Split:
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 2
    images = rng.integers(0, 100, (n, size, size, 1)) + labels[:, None, None, None] * 120
    return Split(images.astype(np.uint8), labels.astype(np.int64))


@pytest.mark.parametrize(("arm_name", "ema"), [("baseline", 0.0), ("genmix", 0.0), ("baseline", 1.0)])
def test_classifier_steps_sync_only_when_a_report_is_due(arm_name: str, ema: float) -> None:
    train, val = _dark_bright(24, 8), _dark_bright(8, 8)
    synthetic = _dark_bright(12, 8) if arm_name == "genmix" else None
    torch.manual_seed(0)
    model = build_classifier("smallcnn", 1, 2, (8, 8))
    config = classifier_config("quick", {"epochs": 1, "batch_size": 2, "patience": 5, "ema_half_life": ema})
    arm = build_arm(arm_name, train, 2, CPU, seed=0, synthetic=synthetic)
    syncs = HostSyncs()
    reports: list[int] = []
    hooks = TrainHooks(should_stop=syncs.next_step, progress=lambda step, total, m: reports.append(syncs.step))
    with syncs.watching():
        train_classifier(model, arm, val, NAMES, config, CPU, hooks)
    steps = 12
    assert syncs.step == steps
    due = {s + 1 for s in range(steps) if s % REPORT_EVERY == 0}  # 1-based: the step's should_stop opened it
    assert set(reports) == due | {steps}
    for step in range(1, steps):  # the last step also ends the epoch: validation reads its predictions
        expected = 1 if step in due else 0  # the reported loss
        assert syncs.count(step) == expected, (step, syncs.per_step.get(step))
    assert syncs.count(0) == 0, syncs.per_step.get(0)  # set-up


@pytest.mark.parametrize(
    ("name", "report_reads"),
    [
        ("dcgan", {"tolist": 1}),  # one read of the window's mean losses
        ("stylegan", {"tolist": 1, "__float__": 1}),  # and the latest R1 penalty
        ("diffusion", {"tolist": 1}),
    ],
)
def test_generator_steps_sync_only_when_a_report_is_due(name: str, report_reads: dict[str, int]) -> None:
    cls = generator_class(name)
    model = cls(2, 1, (16, 16), config={cls.total_key: 8, "log_every": 3}, profile="tiny", seed=0)
    syncs = HostSyncs()
    reports: list[int] = []
    hooks = TrainHooks(should_stop=syncs.next_step, progress=lambda step, total, m: reports.append(syncs.step))
    with syncs.watching():
        model.fit(bright_dark(6, 16), hooks)
    assert reports == [3, 6, 8]
    for step in range(1, 9):  # the last one includes what follows training (DCGAN: BatchNorm recalibration)
        expected = report_reads if step in reports else {}
        assert dict(syncs.per_step.get(step, {})) == expected, (step, syncs.per_step.get(step))


def test_textual_inversion_steps_sync_only_when_a_report_is_due(tmp_path: Path) -> None:
    from test_textual_inversion import build_tiny_sd, tiny

    from models.generators.textual_inversion import TextualInversion

    config = tiny(build_tiny_sd(tmp_path), steps=6, log_every=3)
    model = TextualInversion(2, 1, (16, 16), config=config, profile="tiny", seed=0)
    syncs = HostSyncs()
    reports: list[int] = []
    hooks = TrainHooks(should_stop=syncs.next_step, progress=lambda step, total, m: reports.append(syncs.step))
    with syncs.watching():
        model.fit(bright_dark(4, 16), hooks)
    assert reports == [3, 6]
    for step in range(1, 6):  # the last step also writes the learnt rows back (a host-side comparison)
        expected = {"tolist": 1} if step in reports else {}
        assert dict(syncs.per_step.get(step, {})) == expected, (step, syncs.per_step.get(step))


def test_a_genmix_batch_does_not_sync() -> None:
    real = torch.rand(40, 1, 8, 8)
    labels = torch.arange(40) % 2
    mixer = GenMixer(real, labels, real[:10].flip(-1), labels[:10], 2, seed=0)
    index = torch.randperm(40)[:16]
    syncs = HostSyncs()
    with syncs.watching():
        batch = mixer.mix(index, check_range=False)
        _ = batch.images, batch.soft_labels
    assert syncs.count(0) == 0, syncs.per_step
    with syncs.watching():
        mixer.mix(index)  # the default range check reads min and max back: the counter must see it
    assert syncs.count(0) == 2, syncs.per_step

    arm = build_arm("genmix", _dark_bright(40), 2, CPU, seed=0, synthetic=_dark_bright(20))
    syncs = HostSyncs()
    with syncs.watching():
        for _x, _y in arm.epoch(8):
            pass
    assert syncs.count(0) == 0, syncs.per_step


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_steps_do_not_synchronize_between_reports() -> None:
    """The device's own account: CUDA warns on every synchronising call in ``sync_debug_mode`` "warn"."""
    cuda = torch.device("cuda")
    model = DCGAN(2, 1, (28, 28), config={"iterations": 8, "log_every": 4}, profile="tiny", seed=0, device=cuda)
    images, labels, weights = model._training_tensors(bright_dark(6, 28))
    model._train_step(images, labels, weights)  # warm-up: optimiser state, cudnn autotuning
    torch.cuda.synchronize()
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(3):
                model._train_step(images, labels, weights)
            arm = build_arm("genmix", _dark_bright(40), 2, cuda, seed=0, synthetic=_dark_bright(20))
            for _x, _y in arm.epoch(8):
                pass
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    synchronizing = [str(w.message) for w in caught if "synchroniz" in str(w.message).lower()]
    assert synchronizing == []
