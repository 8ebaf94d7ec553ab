"""Memory the GenMix arm adds on top of the data it trains on: peak RSS grown by building the arm and a few batches.

The arm's mixer keeps real and synthetic images as the caller's two uint8 tensors (views of the splits for gray
images), so it should add almost nothing; a concatenated real ∪ synthetic pool added a copy of both (issue 14).
The limit printed beside the project: the bytes such a copy would take (real + synthetic uint8).

    GENMIX_TORCH_THREADS=1 python bench/genmix_arm_memory.py --real 100000 --side 64 --channels 1
"""

from __future__ import annotations

import argparse
import resource

import numpy as np
import torch

from models.arms import ArmSettings, build_arm
from models.datasets import Split
from models.genmix import GenMixConfig


def _split(rng: np.random.Generator, count: int, side: int, channels: int) -> Split:
    return Split(rng.integers(0, 256, (count, side, side, channels), dtype=np.uint8), np.arange(count) % 2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=int, default=100_000, help="real training images")
    parser.add_argument("--ratio", type=float, default=0.5, help="synthetic images per real image")
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--channels", type=int, default=1, choices=(1, 3))
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    real = _split(rng, args.real, args.side, args.channels)
    synthetic = _split(rng, int(args.real * args.ratio), args.side, args.channels)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    settings = ArmSettings(genmix=GenMixConfig())
    arm = build_arm("genmix", real, 2, torch.device("cpu"), seed=0, synthetic=synthetic, settings=settings)
    for done, _ in enumerate(arm.epoch(32), start=1):
        if done == args.batches:
            break
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    copy = real.images.nbytes + synthetic.images.nbytes
    print(f"{args.real} real + {len(synthetic)} synthetic × {args.side}² × {args.channels}: the arm and "
          f"{args.batches} batches grew peak RSS by {grown / 2**20:.0f} MiB; a concatenated pool: "
          f"{copy / 2**20:.0f} MiB; ratio {grown / copy:.2f}×")  # fmt: skip


if __name__ == "__main__":
    main()
