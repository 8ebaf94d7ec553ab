"""The prepared CUDA check: bf16 autocast in the StyleGAN and diffusion trainers, with steps/s against float32.

For each generator at its ``quick`` profile on BreastMNIST, the same seed is trained twice for the same steps:
once with ``mixed_precision`` on (bf16 autocast on CUDA) and once off (float32, the peer: the same code
without autocast). It prints steps/s of both and their ratio, checks that every reported loss is finite and
that samples are valid uint8 images that vary, and records peak GPU memory. On the CPU autocast is a no-op,
so the ratio is about 1: that run only proves the script works before a GPU is lent.

    python bench/gpu_check.py --device cuda --steps 300 --json "$OUT/gpu_check.json"
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from models.datasets import ImageSet, load_npz
from models.generators import generator_class
from models.hooks import TrainHooks
from models.runtime import pick_device

REPO_ROOT = Path(__file__).resolve().parents[1]
GENERATORS = ("stylegan", "diffusion")


def timed_fit(name: str, data: ImageSet, device: torch.device, steps: int, warmup: int, mixed: bool) -> dict:
    """Train ``warmup + steps`` steps; steps/s over the last ``steps`` (device synchronised at both ends)."""
    cls = generator_class(name)
    config = {cls.total_key: warmup + steps, "log_every": warmup, "mixed_precision": mixed}
    model = cls(data.num_classes, data.channels, data.image_size, config=config, profile="quick", device=device)
    marks: dict[int, float] = {}
    reports: list[dict[str, float]] = []

    def progress(step: int, total: int, metrics: dict[str, float]) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        marks[step] = time.perf_counter()
        reports.append(dict(metrics))

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    stats = model.fit(data.train, TrainHooks(progress=progress))
    finite = all(math.isfinite(v) for report in reports for k, v in report.items() if k in cls.loss_names)
    out = model.sample([32] * data.num_classes, seed=0)
    pixels = out.images.astype(np.float64)
    return {
        "steps_per_s": steps / (marks[warmup + steps] - marks[warmup]),
        "losses_finite": finite,
        "last_losses": {k: stats[k] for k in cls.loss_names},
        "samples_ok": bool(out.images.dtype == np.uint8 and pixels.std(axis=0).mean() > 2.0),
        "sample_mean_per_class": [float(pixels[out.labels == k].mean()) for k in range(data.num_classes)],
        "peak_memory_mib": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO_ROOT / ".." / "shared" / "datasets" / "breastmnist.npz"))
    parser.add_argument("--device", default="cuda", help="cuda | cpu | auto")
    parser.add_argument("--steps", type=int, default=300, help="timed training steps per run")
    parser.add_argument("--warmup", type=int, default=50, help="untimed steps first (also the report interval)")
    parser.add_argument("--generators", default=",".join(GENERATORS))
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if args.steps % args.warmup:
        parser.error("--steps must be a multiple of --warmup")
    device = pick_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    data = load_npz(args.data)
    print(f"device={device} ({name}), torch {torch.__version__}, data={Path(args.data).name} {data.image_size}")
    results: dict = {"device": str(device), "device_name": name, "steps": args.steps, "generators": {}}
    for generator in args.generators.split(","):
        bf16 = timed_fit(generator, data, device, args.steps, args.warmup, mixed=True)
        fp32 = timed_fit(generator, data, device, args.steps, args.warmup, mixed=False)
        ratio = bf16["steps_per_s"] / fp32["steps_per_s"]
        results["generators"][generator] = {"bf16": bf16, "fp32": fp32, "bf16_over_fp32": ratio}
        ok = bf16["losses_finite"] and bf16["samples_ok"] and fp32["losses_finite"] and fp32["samples_ok"]
        print(
            f"{generator:<10} bf16 {bf16['steps_per_s']:8.2f} steps/s   fp32 {fp32['steps_per_s']:8.2f} steps/s   "
            f"bf16/fp32 {ratio:5.2f}x   losses finite and samples valid: {'yes' if ok else 'NO'}"
            + (f"   peak {bf16['peak_memory_mib']:.0f} MiB" if bf16["peak_memory_mib"] is not None else "")
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
