"""``genmix run --workers 2`` against ``--workers 1`` on one study: wall time, its ratio to the ideal, same results.

One small study (``--seeds`` seeds of a quick-profile DCGAN with ``--generator-iterations`` iterations, the
baseline and GenMix arms, the small CNN for ``--epochs`` epochs) runs twice as a child ``genmix run``, each
time in a fresh folder, one torch thread per process (``GENMIX_TORCH_THREADS=1``): once in one process, once
with two unit processes side by side. Printed: both wall times and CPU seconds (the child and every unit
process it waited for), the ratio of the two walls against the limit two processes can reach (0.5), and whether
the two ``results.json`` agree record for record. Each unit process starts Python and torch and reads the set
(a few CPU seconds), which small units feel most.

    GENMIX_TORCH_THREADS=1 python bench/cli_workers.py --dataset ../shared/datasets/breastmnist.npz [--json out.json]

On a machine whose cores other work shares, the ratio says as much about the neighbours: say what ran.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_study(args: argparse.Namespace, out: Path, workers: int) -> tuple[float, float]:
    """One ``genmix run`` of the study into ``out``; (wall s, CPU s of it and its unit processes)."""
    argv = [
        sys.executable, "-m", "cli.main", "run", "--dataset", str(args.dataset), "--generators", "dcgan",
        "--arms", "baseline,genmix", "--profile", "quick", "--seeds", args.seeds, "--epochs", str(args.epochs),
        "--generator-config", json.dumps({"dcgan": {"iterations": args.generator_iterations}}),
        "--no-figures", "--device", "cpu", "--out", str(out), "--workers", str(workers),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "GENMIX_TORCH_THREADS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    done = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"genmix run --workers {workers} failed:\n{done.stderr[-3000:]}")
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def same_results(a: Path, b: Path) -> bool:
    """Whether two runs' records agree: the same run ids with the same metrics and learning curves."""
    one, two = (json.loads((p / "results.json").read_text()) for p in (a, b))
    first = {r["run_id"]: (r["metrics"], r["history"]) for r in one["records"]}
    second = {r["run_id"]: (r["metrics"], r["history"]) for r in two["records"]}
    return first == second and one["verdicts"] == two["verdicts"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, required=True, help="a MedMNIST-layout .npz (e.g. breastmnist.npz)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--generator-iterations", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="genmix-workers-") as scratch:
        one_wall, one_cpu = run_study(args, Path(scratch) / "one", 1)
        two_wall, two_cpu = run_study(args, Path(scratch) / "two", 2)
        agree = same_results(Path(scratch) / "one", Path(scratch) / "two")
    ratio = two_wall / one_wall
    seeds = len([s for s in args.seeds.split(",") if s.strip()])
    limit = 0.5  # two processes at best halve the wall time
    print(f"study: {seeds} seeds × (DCGAN {args.generator_iterations} it, baseline + GenMix, {args.epochs} epochs)")
    print(f"--workers 1: {one_wall:7.1f} s wall, {one_cpu:7.1f} CPU s")
    print(f"--workers 2: {two_wall:7.1f} s wall, {two_cpu:7.1f} CPU s")
    print(f"ratio 2 / 1: {ratio:.2f} (limit {limit:.2f}); results the same: {'yes' if agree else 'NO'}")
    if args.json:
        args.json.write_text(json.dumps({
            "one_wall_s": one_wall, "one_cpu_s": one_cpu, "two_wall_s": two_wall, "two_cpu_s": two_cpu,
            "ratio": ratio, "limit": limit, "same_results": agree, "seeds": args.seeds,
            "generator_iterations": args.generator_iterations, "epochs": args.epochs,
        }, indent=2))  # fmt: skip
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
