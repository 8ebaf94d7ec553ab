"""How fast is the GenMix mixer? Mixed images per second against two references, same batches, same run.

* ``lerp floor``: ``torch.lerp`` over partners gathered beforehand (gather not timed): read two images,
  write one, the least memory traffic any blend can have. ``lerp, one hot batch`` repeats it on a single
  batch that stays in cache, a lower bound no real training step sees.
* ``torchvision MixUp``: ``torchvision.transforms.v2.MixUp`` on the pre-gathered real batch (one λ per
  batch, partners by rolling the batch), the library one would otherwise reach for.

The mixer does more than either (draws partners and per-sample λ, gathers from the pool, builds soft
labels). Every method cycles through ``--rotate`` distinct batches whose inputs span as much memory as the
mixer's pool, so none re-reads a batch that stays in cache; methods are timed round-robin so load spikes
on a shared machine hit all of them alike; the median is reported.

    python bench/mixer.py --batch 256 --channels 3 --size 64 --pool 4000 --repeats 200
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import torch
import torchvision
from torchvision.transforms import v2

from models.genmix import GenMixConfig, GenMixer
from models.runtime import pick_device, torch_rng


def _minor_faults() -> int:
    """Minor page faults of this process so far (0 where the platform cannot say)."""
    try:
        import resource
    except ImportError:  # not on Unix
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _measure(
    fns: dict[str, Callable[[], object]], repeats: int, warmup: int, device: torch.device, clock: Callable[[], float]
) -> dict[str, tuple[float, float]]:
    """(median seconds, mean minor page faults) per call of each function, timed round-robin.

    Round-robin makes load spikes on a shared machine hit every method alike. Page faults are counted
    because a freshly mapped output buffer (the allocator returned the last one to the OS) can double the
    cost of a memory-bound op; the count says when that, not the op, is what was measured.
    """

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync()
    times: dict[str, list[float]] = {name: [] for name in fns}
    faults: dict[str, int] = dict.fromkeys(fns, 0)
    for _ in range(repeats):
        for name, fn in fns.items():
            before = _minor_faults()
            start = clock()
            fn()
            sync()
            times[name].append(clock() - start)
            faults[name] += _minor_faults() - before
    return {name: (statistics.median(times[name]), faults[name] / repeats) for name in fns}


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--size", type=int, default=64, help="image height = width")
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--pool", type=int, default=4000, help="real images; as many synthetic again")
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--rotate", type=int, default=0, help="distinct batches cycled (0: enough to span the pool)")
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall: elapsed time; cpu: this process's CPU time (steadier when other jobs share the cores)",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument(
        "--pool-dtype",
        choices=["float32", "uint8"],
        default="float32",
        help="the mixer's pool: float32 images in [0, 1], or uint8 converted per batch (value_divisor 255)",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    device = pick_device(args.device)
    gen = torch_rng(0, device)
    shape = (args.channels, args.size, args.size)
    real = torch.rand(args.pool, *shape, generator=gen, device=device)
    synthetic = torch.rand(args.pool, *shape, generator=gen, device=device)
    real_labels = torch.randint(0, args.classes, (args.pool,), generator=gen, device=device)
    synthetic_labels = torch.randint(0, args.classes, (args.pool,), generator=gen, device=device)
    if args.pool_dtype == "uint8":  # the references keep float inputs: the mixer's per-batch conversion is timed
        real, synthetic = (real * 255).round().div_(255), (synthetic * 255).round().div_(255)
        stored = (
            (real * 255).round().to(torch.uint8),
            (synthetic * 255).round().to(torch.uint8),
            {"value_divisor": 255.0},
        )
    else:
        stored = (real, synthetic, {})
    mixer = GenMixer(
        stored[0], real_labels, stored[1], synthetic_labels, args.classes, GenMixConfig(), seed=0, **stored[2]
    )
    pool = torch.cat([real, synthetic])
    # enough distinct batches that the references' inputs (2 images per output) span as much memory as the
    # pool the mixer gathers from: otherwise they re-read a cache-resident set the mixer never gets.
    rotate = args.rotate or max(1, -(-len(pool) // (2 * args.batch)))

    # The references get their partners (and λ) gathered beforehand, outside the timing.
    indices = [torch.randint(0, args.pool, (args.batch,), generator=gen, device=device) for _ in range(rotate)]
    batches = [mixer.mix(index, check_range=False) for index in indices]
    x_real = [real[index] for index in indices]
    partners = [pool[b.partner_index + b.partner_pool.long() * args.pool] for b in batches]
    weights = [b.lam.view(-1, 1, 1, 1) for b in batches]
    labels = [real_labels[index] for index in indices]
    out = torch.empty_like(x_real[0])
    mixup = v2.MixUp(alpha=0.3, num_classes=args.classes)
    turn = {"mix": 0, "lerp": 0, "tv": 0}

    def cycle(name: str) -> int:
        turn[name] = (turn[name] + 1) % rotate
        return turn[name]

    def lerp_cold() -> torch.Tensor:
        r = cycle("lerp")
        return torch.lerp(x_real[r], partners[r], weights[r])

    def torchvision_mixup() -> object:
        r = cycle("tv")
        return mixup(x_real[r], labels[r])

    measured = _measure(
        {
            # the training path: no host-side range check, and the images (blended on first access) are made
            "GenMixer.mix": lambda: mixer.mix(indices[cycle("mix")], check_range=False).images,
            "lerp floor": lerp_cold,
            "lerp, one hot batch": lambda: torch.lerp(x_real[0], partners[0], weights[0], out=out),
            "torchvision MixUp": torchvision_mixup,
        },
        args.repeats,
        args.warmup,
        device,
        time.perf_counter if args.clock == "wall" else time.process_time,
    )
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(
        f"device={device} ({name}), threads={torch.get_num_threads()}, torch {torch.__version__}, "
        f"torchvision {torchvision.__version__}"
    )
    print(
        f"batch={args.batch} image={'x'.join(map(str, shape))} pool={args.pool}+{args.pool} "
        f"repeats={args.repeats} rotate={rotate} clock={args.clock} pool dtype={args.pool_dtype}"
    )
    print(f"{'method':<22}{'ms/batch':>10}{'images/s':>14}{'faults/call':>13}")
    for method, (seconds, faults) in measured.items():
        print(f"{method:<22}{seconds * 1e3:>10.3f}{args.batch / seconds:>14,.0f}{faults:>13.0f}")
    results = {method: seconds for method, (seconds, _) in measured.items()}
    project = results["GenMixer.mix"]
    ratios = {
        "project/lerp": results["lerp floor"] / project,
        "project/lerp-hot": results["lerp, one hot batch"] / project,
        "project/torchvision": results["torchvision MixUp"] / project,
    }
    for label, ratio in ratios.items():
        print(f"{label} (throughput ratio): {ratio:.2f}x")
    return ratios


if __name__ == "__main__":
    main()
