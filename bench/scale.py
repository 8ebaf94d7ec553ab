"""Memory and time of ``genmix run`` as the data set grows: peak RSS against the set's uint8 size, s per epoch.

For each size, a MedMNIST-layout npz of generated images (two classes told apart by brightness and a stripe,
train N, val and test N/10 each, stored uncompressed) is written to a scratch folder and ``genmix run`` trains
on it as a child process: DCGAN with a few generator iterations, the baseline and GenMix arms, one seed,
``--epochs`` epochs (quick profile). Printed per size: the uint8 bytes of all splits, the child's peak RSS
(``wait4``'s ``ru_maxrss``: the whole run, generator, quality, export and classifiers included), the peak beyond
the start-up footprint (a child that imports what ``genmix run`` imports, measured the same way), that over the
uint8 bytes, and each classifier stage's seconds per epoch (stage start to next stage start, read from the
run's progress lines). Then the peak RSS of each stage (``start-up`` before the first progress line, then the
stages the progress lines name), from the child's ``VmHWM``, reset at each stage's line and read every
:data:`SAMPLE_PERIOD` s (:class:`StagePeaks`), so the stage that holds the run's peak is named. Target (issue
14): peak − footprint < uint8 bytes + 1.5 GB, and time linear in N.

    nice -n 10 env GENMIX_TORCH_THREADS=1 python bench/scale.py --sizes 1000,10000 --side 64 --channels 1 \
        --epochs 1 --generator-iterations 20 --json bench-scale.json

``--max-uint8-gb`` (default 4) refuses sizes whose uint8 data alone would exceed it, so a typo cannot exhaust a
small machine's memory; ``--keep`` keeps the generated sets and run folders.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from cli.malloc import TUNABLES_VALUE  # noqa: E402

STAGE = re.compile(r"\[(\d+)/(\d+)\] ([^:\r\n]+?)(?::|\s{2}|\r|\n|$)")
STARTED = re.compile(r"\[\d+/\d+\] [^:\r\n]+:")  # a progress line whose stage name is complete
SAMPLE_PERIOD = 0.2
"""Seconds between reads of the child's peak RSS (``/proc/<pid>/status``) within a stage."""
FOOTPRINT = "import torch, torchvision; import models.experiment, models.quality, cli.science; print('ok')"


def make_set(path: Path, n: int, side: int, channels: int, seed: int = 0, chunk: int = 2000) -> int:
    """Write the generated npz (uncompressed) chunk by chunk; returns its uint8 bytes over all splits."""
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    total = 0
    for split, count in (("train", n), ("val", max(20, n // 10)), ("test", max(20, n // 10))):
        shape = (count, side, side) if channels == 1 else (count, side, side, channels)
        images = np.empty(shape, np.uint8)
        labels = np.arange(count) % 2
        stripe = np.zeros((side, side), np.int16)
        stripe[:, side // 3 : side // 2] = 40
        for start in range(0, count, chunk):
            stop = min(count, start + chunk)
            noise = rng.integers(0, 120, (stop - start, side, side), dtype=np.int16)
            block = noise + (labels[start:stop, None, None] * (60 + stripe))
            block = np.clip(block, 0, 255).astype(np.uint8)
            images[start:stop] = block if channels == 1 else block[..., None]
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = labels.reshape(-1, 1)
        total += images.nbytes
    arrays["class_names"] = np.asarray(["dim", "bright"])
    with path.open("wb") as handle:
        np.savez(handle, **arrays)
    return total


def _status_kb(pid: int, *fields: str) -> dict[str, int]:
    """``fields`` (e.g. ``VmRSS``, ``VmHWM``) of ``/proc/<pid>/status`` in KiB; empty once the process is gone."""
    found: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                key = line.split(":", 1)[0]
                if key in fields:
                    found[key] = int(line.split()[1])
    except (OSError, ValueError):
        return {}
    return found


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of the process so far (all its threads; ``/proc/<pid>/stat``), None once gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _reset_peak(pid: int) -> bool:
    """Reset the process's VmHWM to its current RSS (``/proc/<pid>/clear_refs``, Linux); whether it worked."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


class StagePeaks:
    """Peak RSS of a child per stage of its run, read from ``/proc/<pid>/status``.

    Where ``/proc/<pid>/clear_refs`` can be written, the kernel's own peak (``VmHWM``) is read and reset the
    moment the reader sees a stage's progress line (:meth:`enter`), and read every ``period`` s in between, so
    no short spike is missed; otherwise the maximum of ``VmRSS`` sampled every ``period`` s. A stage starts when
    its line reaches the reader (milliseconds late); what the child does after its last sample before exiting
    (at most ``period`` s) is counted in ``ru_maxrss`` only. The child's CPU seconds are read at each stage's
    start too (:attr:`cpu_starts`): per-stage CPU time, the clock that other processes on the machine disturb least."""

    def __init__(self, pid: int, period: float = SAMPLE_PERIOD) -> None:
        self.pid, self.period = pid, period
        self.current = "start-up"
        self.peaks: dict[str, int] = {}
        self.cpu_starts: list[tuple[str, float]] = [("start-up", 0.0)]
        self.exact = _reset_peak(pid)
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        field = "VmHWM" if self.exact else "VmRSS"
        value = _status_kb(self.pid, field).get(field)
        if value is not None:
            self.peaks[self.current] = max(self.peaks.get(self.current, 0), value * 1024)

    def enter(self, stage: str) -> None:
        """The child started ``stage``: the peak so far belongs to the stage before it."""
        with self._lock:
            self._read()
            if self.exact:
                _reset_peak(self.pid)
            self.current = stage
            cpu = _cpu_seconds(self.pid)
            if cpu is not None:
                self.cpu_starts.append((stage, cpu))

    def _run(self) -> None:
        while not self._done.wait(self.period):
            with self._lock:
                self._read()

    def stop(self) -> dict[str, int]:
        self._done.set()
        self._thread.join(timeout=5)
        return dict(self.peaks)

    def stage_cpu(self, total: float) -> dict[str, float]:
        """CPU seconds per stage: from its start to the next stage's start, the last one to ``total``."""
        ends = [cpu for _, cpu in self.cpu_starts[1:]] + [total]
        return {name: round(end - cpu, 1) for (name, cpu), end in zip(self.cpu_starts, ends, strict=True)}


def run_child(
    argv: list[str], env: dict[str, str]
) -> tuple[int, float, int, list[tuple[float, str]], float, dict[str, int], dict[str, float]]:
    """Run ``argv``; returns (exit code, wall s, peak RSS bytes, [(t, stage name)] in order of appearance,
    CPU s of the child: the steadier clock on a shared machine, {stage name: peak RSS bytes in that stage},
    {stage name: CPU s in that stage})."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peaks = StagePeaks(proc.pid)
    stages: list[tuple[float, str]] = []
    seen: set[str] = set()
    tail: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        buffer = ""
        while chunk := proc.stderr.read1(4096):
            buffer += chunk.decode("utf-8", "replace")
            *parts, buffer = re.split(r"[\r\n]", buffer)
            # tqdm ends a bar's line with the next bar's "\r": a stage's first line is still in ``buffer`` when it
            # is shown, so it counts as soon as its name is complete (up to its colon), not at the next refresh
            tail.extend(parts)
            del tail[:-40]
            for part in [*parts, *([buffer] if STARTED.search(buffer) else [])]:
                match = STAGE.search(part)
                if match and match.group(1) not in seen:
                    seen.add(match.group(1))
                    stages.append((time.monotonic() - start, match.group(3).strip()))
                    peaks.enter(match.group(3).strip())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    _, status, usage = os.wait4(proc.pid, 0)
    stage_peaks = peaks.stop()
    reader.join(timeout=10)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        print("\n".join(tail[-15:]), file=sys.stderr)
    cpu = usage.ru_utime + usage.ru_stime
    stage_cpu = peaks.stage_cpu(cpu)
    return proc.returncode, time.monotonic() - start, usage.ru_maxrss * 1024, stages, cpu, stage_peaks, stage_cpu


def print_linearity(rows: list[dict]) -> None:
    """Each classifier stage's CPU µs per training image and epoch, and its ratio to the smallest set's: a
    ratio near 1 at every size is time linear in N (validation and test grow with N too, at N/10 each)."""
    if len(rows) < 2:
        return
    first = rows[0]
    for stage, base in first["classifier_cpu_us_per_image_epoch"].items():
        cells = []
        for row in rows:
            value = row["classifier_cpu_us_per_image_epoch"].get(stage)
            if value:
                cells.append(f"{row['train_images']}: {value} µs ({value / base:.2f} ×)")
        print(f"linearity, CPU per training image and epoch, {stage}: " + ", ".join(cells))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000", help="training images per set, comma-separated")
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--channels", type=int, choices=(1, 3), default=1)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--generator-iterations", type=int, default=20)
    parser.add_argument("--arms", default="baseline,genmix")
    parser.add_argument("--max-uint8-gb", type=float, default=4.0)
    parser.add_argument("--scratch", type=Path, default=None, help="folder for the sets and runs (default: a temp dir)")
    parser.add_argument(
        "--glibc-tunables",
        default=TUNABLES_VALUE,
        help="GLIBC_TUNABLES for the runs (default: the ones genmix run sets itself, cli/malloc.py); 'none': "
        "glibc's own dynamic defaults (the CLI is then started through python -c, which it does not re-execute)",
    )
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    # the glibc malloc tunables genmix run re-executes itself with (cli/malloc.py), for the footprint child too
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "GLIBC_TUNABLES": args.glibc_tunables}
    entry = [sys.executable, "-m", "cli.main"]
    if args.glibc_tunables == "none":
        env.pop("GLIBC_TUNABLES")
        entry = [sys.executable, "-c", "import sys; from cli.main import main; sys.exit(main())"]
    code, _, footprint, *_ = run_child([sys.executable, "-c", FOOTPRINT], env)
    if code:
        return code
    scratch = Path(tempfile.mkdtemp(prefix="genmix-scale-", dir=args.scratch))
    rows = []
    try:
        for n in (int(s) for s in args.sizes.split(",") if s):
            expected = (n + 2 * max(20, n // 10)) * args.side**2 * args.channels
            if expected > args.max_uint8_gb * 1e9:
                print(f"skip {n}: {expected / 1e9:.2f} GB of uint8 is over --max-uint8-gb {args.max_uint8_gb}")
                continue
            data = scratch / f"scale_{n}_{args.side}_{args.channels}.npz"
            nbytes = make_set(data, n, args.side, args.channels)
            out = scratch / f"run_{n}"
            argv = [
                *entry, "run", "--dataset", str(data), "--generators", "dcgan",
                "--arms", args.arms, "--epochs", str(args.epochs), "--seeds", "0", "--profile", "quick",
                "--generator-config", json.dumps({"dcgan": {"iterations": args.generator_iterations}}),
                "--out", str(out), "--device", "cpu",
            ]  # fmt: skip
            code, wall, peak, stages, cpu, stage_peaks, stage_cpu = run_child(argv, env)
            ends = [t for t, _ in stages[1:]] + [wall]
            per_stage = {name: round(end - t, 1) for (t, name), end in zip(stages, ends, strict=True)}
            epoch_s = {k: round(v / args.epochs, 1) for k, v in per_stage.items() if k.startswith("classifier")}
            beyond = peak - footprint
            row = {
                "train_images": n,
                "side": args.side,
                "channels": args.channels,
                "uint8_bytes": nbytes,
                "peak_rss_bytes": peak,
                "footprint_bytes": footprint,
                "peak_beyond_footprint_bytes": beyond,
                "beyond_over_uint8": round(beyond / nbytes, 2),
                "target_met": beyond < nbytes + 1.5e9,
                "wall_s": round(wall, 1),
                "cpu_s": round(cpu, 1),
                "stage_s": per_stage,
                "classifier_s_per_epoch": epoch_s,
                "stage_cpu_s": stage_cpu,
                "classifier_cpu_us_per_image_epoch": {
                    k: round(v / (n * args.epochs) * 1e6) for k, v in stage_cpu.items() if k.startswith("classifier")
                },
                "stage_peak_rss_bytes": stage_peaks,
                "stage_peak_beyond_footprint_bytes": {k: v - footprint for k, v in stage_peaks.items()},
                "exit_code": code,
                "glibc_tunables": args.glibc_tunables,
                "command": " ".join(argv),
            }
            rows.append(row)
            print(
                f"{n:>7} × {args.side}² × {args.channels}: uint8 {nbytes / 1e6:8.1f} MB  peak {peak / 2**30:5.2f} GiB  "
                f"beyond start-up {beyond / 2**30:5.2f} GiB = {beyond / nbytes:5.2f} × uint8  "
                f"target {'met' if row['target_met'] else 'MISSED'}  wall {wall:6.0f} s  CPU {cpu:6.0f} s  "
                f"s/epoch {epoch_s}" + ("" if code == 0 else f"  EXIT {code}"),
                flush=True,
            )
            for name, value in stage_peaks.items():
                beyond_stage = (value - footprint) / 2**30
                print(
                    f"{'':>9}peak in {name:<40} {value / 2**30:5.2f} GiB  beyond start-up {beyond_stage:5.2f} GiB  "
                    f"CPU {stage_cpu.get(name, float('nan')):7.1f} s"
                )
            if stage_peaks and peak > max(stage_peaks.values()) + (64 << 20):
                print(f"{'':>9}the run's peak came after the last sample (its last {SAMPLE_PERIOD} s, or exit)")
            if not args.keep:
                shutil.rmtree(out, ignore_errors=True)
                data.unlink(missing_ok=True)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"start-up footprint {footprint / 2**30:.2f} GiB ({FOOTPRINT})")
    print_linearity(rows)
    if args.json:
        args.json.write_text(json.dumps({"footprint_bytes": footprint, "rows": rows}, indent=2))
    return 0 if all(r["exit_code"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
