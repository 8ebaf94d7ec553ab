"""The prepared GPU check: DCGAN and a classifier with the GenMix arm at 64 and 128 px, on a lent CUDA card.

For each image side in ``--sizes`` (default 64,128) the data set named by ``--data`` (an npz or image folder;
there is no default: data sets never live in the repository) is resized to that side (antialiased bilinear)
and two trainers run as the service runs them:

* **DCGAN** (``quick`` profile, ``DCGAN.fit``): ``--warmup`` untimed steps (cuDNN autotuning, optimiser state),
  ``--steps`` timed steps, then ``--profile-steps`` more under ``torch.profiler``;
* **classifier + GenMix** (``quick`` profile's network and batch, ``train_classifier`` on the GenMix arm whose
  partners are real ∪ 1:1 synthetic images sampled from that DCGAN): one untimed warm-up epoch, then
  ``--epochs`` timed epochs (each ends with a validation pass over ``--val-images`` images), then one epoch under
  the profiler.

Printed per trainer and size: steps/s (device synchronised at both ends of the window), peak GPU memory
(``torch.cuda.max_memory_allocated`` over the run), the share of the profiled window in which the GPU ran a
kernel or copy (the union of the profiler's device intervals over the window's wall time), and host syncs per
step in the timed window (``torch.cuda.set_sync_debug_mode("warn")`` counts every call that waits for the
device; the loops should show one per progress report and none in between). It also checks that losses stay
finite and samples are valid uint8 images that vary.

``--mixed-precision stylegan,diffusion`` adds, per size, those trainers (``quick``) with bf16 autocast against
float32 from the same seed (steps/s and their ratio).

On the CPU (``--device cpu``) the same code runs at tiny sizes, so the script is checked where no GPU is lent;
GPU memory, busy share and sync counts are then reported as n/a.

    python bench/gpu_check.py --data shared/datasets/breastmnist.npz --device cuda --json "$OUT/gpu_check.json"
    python bench/gpu_check.py --data /tmp/toy.npz --device cpu --sizes 16 --steps 4 --warmup 2 \
        --profile-steps 2 --epochs 1 --max-train 64 --val-images 16 --threads 1
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.arms import build_arm  # noqa: E402
from models.classifiers import build_classifier  # noqa: E402
from models.datasets import Split, load_dataset  # noqa: E402
from models.generators import generator_class  # noqa: E402
from models.generators.dcgan import DCGAN  # noqa: E402
from models.hooks import TrainHooks  # noqa: E402
from models.runtime import configure_device, configure_threads, pick_device, seed_everything  # noqa: E402
from models.train import classifier_config, train_classifier  # noqa: E402


def resize(split: Split, side: int, limit: int | None = None) -> Split:
    """uint8 (N, H, W, C) -> (N, side, side, C), antialiased bilinear, rounded; the first ``limit`` images."""
    images, labels = split.images[:limit], split.labels[:limit]
    if images.shape[1:3] == (side, side):
        return Split(np.ascontiguousarray(images), labels.astype(np.int64))
    out = []
    for start in range(0, len(images), 512):
        x = torch.from_numpy(np.ascontiguousarray(images[start : start + 512])).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
        out.append(x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy())
    return Split(np.concatenate(out), labels.astype(np.int64))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def sync_warnings(device: torch.device) -> Iterator[list[Any]]:
    """The warnings CUDA raises for every synchronising call while this block runs (empty on the CPU)."""
    caught: list[Any] = []
    if device.type != "cuda":
        yield caught
        return
    previous = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield caught
        finally:
            torch.cuda.set_sync_debug_mode(previous)
    caught.extend(w for w in records if "synchroniz" in str(w.message).lower())


class BusyShare:
    """``torch.profiler`` over a window: the share of its wall time in which the device ran something."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.profiler: torch.profiler.profile | None = None
        self.wall = 0.0

    def start(self) -> None:
        if self.device.type != "cuda":
            return
        _sync(self.device)
        activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
        self.profiler = torch.profiler.profile(activities=activities)
        self.profiler.start()
        self.started = time.perf_counter()

    def stop(self) -> None:
        if self.profiler is None:
            return
        _sync(self.device)
        self.wall = time.perf_counter() - self.started
        self.profiler.stop()

    def share(self) -> float | None:
        """Union of device-side intervals (kernels, copies, memsets) / the window's wall time."""
        if self.profiler is None or self.wall <= 0:
            return None
        try:
            intervals = sorted(
                (e.time_range.start, e.time_range.end)
                for e in self.profiler.events()
                if e.device_type == torch.autograd.DeviceType.CUDA and e.time_range.end > e.time_range.start
            )
        except Exception as exc:  # a profiler without device events must not cost the rest of the check
            print(f"GPU busy share unavailable: {exc!r}", file=sys.stderr)
            return None
        busy, end = 0.0, -math.inf
        for start, stop in intervals:  # microseconds
            if start > end:
                busy += stop - start
                end = stop
            elif stop > end:
                busy += stop - end
                end = stop
        return min(1.0, busy / 1e6 / self.wall)


def _peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def check_dcgan(train: Split, classes: int, device: torch.device, args: argparse.Namespace) -> tuple[dict, DCGAN]:
    """DCGAN.fit: warm-up, a timed window (with sync counting), a profiled window; then samples for GenMix."""
    side = train.images.shape[1]
    total = args.warmup + args.steps + args.profile_steps
    config = {"iterations": total, "log_every": args.warmup, "bn_recalibration": 0}
    model = DCGAN(classes, train.images.shape[-1], (side, side), config=config, profile="quick", device=device)
    marks: dict[int, float] = {}
    reports: list[dict[str, float]] = []
    busy = BusyShare(device)
    syncs_cm = sync_warnings(device)
    syncs: list[Any] = []

    def progress(step: int, total_steps: int, metrics: dict[str, float]) -> None:
        nonlocal syncs
        reports.append(dict(metrics))
        if step == args.warmup:
            _sync(device)
            marks[step] = time.perf_counter()
            syncs = syncs_cm.__enter__()
        if step == args.warmup + args.steps:
            syncs_cm.__exit__(None, None, None)  # before the explicit synchronize, which would count too
            _sync(device)
            marks[step] = time.perf_counter()
            busy.start()
        if step == total and args.profile_steps:
            busy.stop()

    _peak_reset(device)
    model.fit(train, TrainHooks(progress=progress))
    n_syncs = len(syncs)
    out = model.sample([max(1, int(c)) for c in np.bincount(train.labels, minlength=classes)], seed=0)
    pixels = out.images.astype(np.float64)
    result = {
        "steps_per_s": args.steps / (marks[args.warmup + args.steps] - marks[args.warmup]),
        "peak_gpu_mib": _peak_mib(device),
        "gpu_busy_share": busy.share(),
        "syncs_per_step": n_syncs / args.steps if device.type == "cuda" else None,
        "reports_in_timed_window": args.steps // args.warmup,
        "losses_finite": all(math.isfinite(v) for r in reports for v in r.values()),
        "samples_ok": bool(out.images.dtype == np.uint8 and out.images.shape[1:3] == (side, side) and pixels.std() > 0),
        "sample_std_between_draws": float(pixels.std(axis=0).mean()),  # > 2 once the DCGAN has learnt something
        "batch_size": model.config["batch_size"],
    }
    model.synthetic = out  # type: ignore[attr-defined]  # the GenMix partners of the classifier check
    return result, model


def check_classifier(
    train: Split, val: Split, synthetic: Split, classes: int, device: torch.device, args: argparse.Namespace
) -> dict:
    """train_classifier on the GenMix arm: a warm-up epoch, ``--epochs`` timed epochs, one profiled epoch."""
    side, channels = train.images.shape[1], train.images.shape[-1]
    names = [str(k) for k in range(classes)]

    syncs: list[Any] = []
    network = {"name": args.classifier, "pretrained": False} if args.classifier else {}  # random init: no download

    def run(epochs: int, seed: int, count_syncs: bool = False) -> tuple[float, int, list[float]]:
        seed_everything(seed)
        config = classifier_config("quick", {**network, "epochs": epochs, "patience": epochs + 1})
        model = build_classifier(config.name, channels, classes, (side, side))
        arm = build_arm("genmix", train, classes, device, seed=seed, synthetic=synthetic)
        steps = epochs * -(-len(arm) // config.batch_size)
        _sync(device)
        started = time.perf_counter()
        with sync_warnings(device) if count_syncs else nullcontext([]) as caught:
            result = train_classifier(model, arm, val, names, config, device)
        syncs.extend(caught)
        _sync(device)
        return time.perf_counter() - started, steps, [row["train_loss"] for row in result.history]

    run(1, 0)  # warm-up: cuDNN autotuning for these shapes, allocator pools
    _peak_reset(device)
    seconds, steps, losses = run(args.epochs, 1, count_syncs=True)
    busy = BusyShare(device)
    busy.start()
    run(1, 2)
    busy.stop()
    config = classifier_config("quick", network)
    return {
        "steps_per_s": steps / seconds,
        "images_per_s": steps * config.batch_size / seconds,
        "peak_gpu_mib": _peak_mib(device),
        "gpu_busy_share": busy.share(),
        "syncs_per_step": len(syncs) / steps if device.type == "cuda" else None,
        "losses_finite": all(math.isfinite(v) for v in losses),
        "network": config.name,
        "batch_size": config.batch_size,
        "steps_timed": steps,
        "includes": f"a validation pass over {len(val)} images per epoch",
    }


def mixed_precision_fit(name: str, train: Split, classes: int, device: torch.device, args: argparse.Namespace,
                        mixed: bool) -> dict:  # fmt: skip
    """StyleGAN or diffusion (``quick``) with ``mixed_precision`` on (bf16 autocast on CUDA) or off: steps/s."""
    cls = generator_class(name)
    config = {cls.total_key: args.warmup + args.steps, "log_every": args.warmup, "mixed_precision": mixed}
    side, channels = train.images.shape[1], train.images.shape[-1]
    model = cls(classes, channels, (side, side), config=config, profile="quick", device=device)
    marks: dict[int, float] = {}
    finite = True

    def progress(step: int, total: int, metrics: dict[str, float]) -> None:
        nonlocal finite
        _sync(device)
        marks[step] = time.perf_counter()
        finite &= all(math.isfinite(v) for k, v in metrics.items() if k in cls.loss_names)

    _peak_reset(device)
    model.fit(train, TrainHooks(progress=progress))
    return {
        "steps_per_s": args.steps / (marks[args.warmup + args.steps] - marks[args.warmup]),
        "losses_finite": finite,
        "peak_gpu_mib": _peak_mib(device),
    }


def _fmt(value: float | None, spec: str, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{unit}"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="npz or image folder (required: no data ships with the repo)")
    parser.add_argument("--device", default="cuda", help="cuda | cuda:N | cpu | auto")
    parser.add_argument("--sizes", default="64,128", help="image sides to check (b*2^n with 4<=b<=8)")
    parser.add_argument("--steps", type=int, default=200, help="timed DCGAN steps")
    parser.add_argument("--warmup", type=int, default=20, help="untimed DCGAN steps first (also the report interval)")
    parser.add_argument("--profile-steps", type=int, default=20, help="DCGAN steps under the profiler")
    parser.add_argument("--epochs", type=int, default=3, help="timed classifier epochs")
    parser.add_argument("--classifier", default=None, help="network (default: the quick profile's), random init")
    parser.add_argument("--max-train", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--val-images", type=int, default=256, help="validation images per epoch")
    parser.add_argument(
        "--mixed-precision",
        default="",
        help="also time these generators (stylegan,diffusion) with bf16 autocast against float32, at each size",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    configure_threads(args.threads)
    if args.steps % args.warmup or args.profile_steps % args.warmup:
        parser.error("--steps and --profile-steps must be multiples of --warmup")
    device = configure_device(pick_device(args.device))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    data = load_dataset(args.data)
    val_split = data.splits.get("val") or data.splits.get("test") or data.train
    print(
        f"device={device} ({name}), torch {torch.__version__}, data={Path(args.data).name} "
        f"{data.image_size} x{data.channels}, {min(len(data.train), args.max_train or 10**12)} training images; "
        f"cudnn.benchmark={torch.backends.cudnn.benchmark} tf32={torch.backends.cuda.matmul.allow_tf32}"
    )
    results: dict = {"device": str(device), "device_name": name, "torch": torch.__version__, "sizes": {}}
    ok = True
    for side in (int(s) for s in args.sizes.split(",")):
        train = resize(data.train, side, args.max_train)
        val = resize(val_split, side, args.val_images)
        dcgan, model = check_dcgan(train, data.num_classes, device, args)
        classifier = check_classifier(train, val, model.synthetic, data.num_classes, device, args)
        results["sizes"][side] = {"dcgan": dcgan, "classifier_genmix": classifier}
        for label, r in (("dcgan", dcgan), (f"{classifier['network']}+genmix", classifier)):
            valid = r["losses_finite"] and r.get("samples_ok", True)
            ok &= valid
            print(
                f"{label:<16} {side:>4} px  {r['steps_per_s']:9.2f} steps/s (batch {r['batch_size']})  "
                f"peak {_fmt(r['peak_gpu_mib'], '.0f', ' MiB')}  GPU busy {_fmt(r['gpu_busy_share'], '.0%')}  "
                f"syncs/step {_fmt(r['syncs_per_step'], '.2f')}  valid: {'yes' if valid else 'NO'}"
            )
        for generator in filter(None, args.mixed_precision.split(",")):
            bf16 = mixed_precision_fit(generator, train, data.num_classes, device, args, mixed=True)
            fp32 = mixed_precision_fit(generator, train, data.num_classes, device, args, mixed=False)
            ratio = bf16["steps_per_s"] / fp32["steps_per_s"]
            results["sizes"][side][generator] = {"bf16": bf16, "fp32": fp32, "bf16_over_fp32": ratio}
            ok &= bf16["losses_finite"] and fp32["losses_finite"]
            print(
                f"{generator:<16} {side:>4} px  bf16 {bf16['steps_per_s']:8.2f} steps/s  fp32 "
                f"{fp32['steps_per_s']:8.2f} steps/s  bf16/fp32 {ratio:5.2f}x  peak bf16 "
                f"{_fmt(bf16['peak_gpu_mib'], '.0f', ' MiB')}"
            )
    results["ok"] = ok
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if not ok:
        raise SystemExit("some check failed: non-finite losses or invalid samples")
    return results


if __name__ == "__main__":
    main()
