"""bench/gpu_check.py runs end to end on the CPU at a tiny size, so the prepared GPU check is never untested."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "gpu_check.py"


def _toy_npz(path: Path) -> Path:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 48), ("val", 16), ("test", 16)):
        labels = np.arange(n) % 2
        images = rng.integers(0, 90, (n, 20, 20)) + labels[:, None, None] * 130
        arrays[f"{split}_images"] = images.astype(np.uint8)
        arrays[f"{split}_labels"] = labels.reshape(-1, 1).astype(np.int64)
    np.savez(path, **arrays)
    return path


def test_gpu_check_runs_on_the_cpu_and_reports_every_trainer(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "gpu_check.json"
    data = _toy_npz(tmp_path / "toy.npz")
    tiny = "--sizes 16 --steps 2 --warmup 2 --profile-steps 2 --epochs 1 --val-images 8 --threads 1".split()
    argv = ["--data", str(data), "--device", "cpu", *tiny, "--json", str(out)]
    threads = torch.get_num_threads()
    try:
        results = module.main(argv)
    finally:
        torch.set_num_threads(threads)  # --threads is process-wide
    assert json.loads(out.read_text())["ok"] is True
    size = results["sizes"][16]
    for trainer in ("dcgan", "classifier_genmix"):
        assert size[trainer]["steps_per_s"] > 0 and size[trainer]["losses_finite"]
        assert size[trainer]["peak_gpu_mib"] is None and size[trainer]["gpu_busy_share"] is None  # no GPU here
    assert size["dcgan"]["samples_ok"]


def test_gpu_check_needs_an_explicit_data_path() -> None:
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit):
        module.main(["--device", "cpu"])
