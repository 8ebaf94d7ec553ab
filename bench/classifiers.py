"""Seconds per classifier training: the ``pretrained`` profile (ImageNet EfficientNet-Lite0) against ``quick``.

Each run is exactly what ``genmix run --arms baseline`` trains for one seed (``seed_everything``, the profile's
classifier, the baseline arm, ``train_classifier`` with early stopping on the validation set, the best epoch's
test metrics), timed end to end: wall seconds and the process's CPU seconds (on a shared machine the CPU
clock is the steadier one). Profiles alternate seed by seed, so load spikes hit both alike. Printed: one row
per profile with s per training, s per epoch, epochs, test ACC/AUC (mean ± std over seeds), and the ratio
pretrained / quick.

    GENMIX_TORCH_THREADS=1 python bench/classifiers.py --dataset ../shared/datasets/breastmnist_64.npz \
        --profiles pretrained,quick --seeds 0,1 --out bench-classifiers.json

``--input-sizes 32,64,96,128`` instead times the first profile at each input size (``--epochs`` short runs,
s per epoch and the test metrics reached), the measurement behind the profile's ``input_size``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from models.arms import build_arm  # noqa: E402
from models.classifiers import build_classifier  # noqa: E402
from models.datasets import ImageSet, load_dataset  # noqa: E402
from models.runtime import configure_threads, device_name, seed_everything  # noqa: E402
from models.train import ClassifierConfig, classifier_config, evaluate, train_classifier  # noqa: E402


def train_once(data: ImageSet, config: ClassifierConfig, seed: int, device: torch.device) -> dict[str, Any]:
    """One baseline classifier as ``ExperimentRunner.classifier_run`` trains it, timed."""
    wall, cpu = time.perf_counter(), time.process_time()
    seed_everything(seed)
    model = build_classifier(
        config.name,
        data.channels,
        data.num_classes,
        data.image_size,
        weights=config.weights,
        pretrained=config.pretrained,
        input_size=config.input_size,
        allow_download=config.allow_download,
    )
    arm = build_arm("baseline", data.train, data.num_classes, device, seed)
    result = train_classifier(model, arm, data.val, data.class_names, config, device)
    metrics = evaluate(result.model, data.test, data.class_names, device)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "seed": seed,
        "wall_s": wall,
        "cpu_s": cpu,
        "epochs_trained": result.epochs_trained,
        "best_epoch": result.best_epoch,
        "wall_s_per_epoch": wall / result.epochs_trained,
        "cpu_s_per_epoch": cpu / result.epochs_trained,
        "accuracy": metrics["accuracy"],
        "auc": metrics["auc"],
        "macro_f1": metrics["macro_f1"],
        "history": result.history,
    }


def _stat(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    values = [v * scale for v in values if v is not None]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def summary_row(label: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "label": label,
        "n": len(runs),
        "wall_s": statistics.mean(r["wall_s"] for r in runs),
        "cpu_s": statistics.mean(r["cpu_s"] for r in runs),
        "cpu_s_per_epoch": statistics.mean(r["cpu_s_per_epoch"] for r in runs),
        "epochs": statistics.mean(r["epochs_trained"] for r in runs),
        "text": [
            label,
            str(len(runs)),
            _stat([r["cpu_s"] for r in runs], digits=0),
            _stat([r["wall_s"] for r in runs], digits=0),
            _stat([r["cpu_s_per_epoch"] for r in runs], digits=2),
            _stat([r["epochs_trained"] for r in runs], digits=1),
            _stat([r["accuracy"] for r in runs], 100),
            _stat([r["auc"] for r in runs], 100),
            _stat([r["macro_f1"] for r in runs], 100),
        ],
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    header = ["run", "seeds", "cpu s/training", "wall s/training", "cpu s/epoch", "epochs", "ACC", "AUC", "F1"]
    body = [row["text"] for row in rows]
    widths = [max(len(c[i]) for c in [header, *body]) for i in range(len(header))]
    for cells in [header, ["-" * w for w in widths], *body]:
        print(
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, default=REPO_ROOT.parent / "shared/datasets/breastmnist_64.npz")
    parser.add_argument("--profiles", default="pretrained,quick", help="comma-separated; the first is compared")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--epochs", type=int, default=None, help="override every profile's epochs")
    parser.add_argument("--input-sizes", default=None, help="time the first profile at these input sizes instead")
    parser.add_argument("--settings", default=None, help="JSON classifier settings over the first profile")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("GENMIX_TORCH_THREADS", "1")))
    parser.add_argument("--out", type=Path, default=None, help="write every run as JSON here")
    args = parser.parse_args()

    configure_threads(args.threads)
    device = torch.device("cpu")
    data = load_dataset(args.dataset)
    seeds = [int(s) for s in args.seeds.split(",")]
    profiles = args.profiles.split(",")
    extra = json.loads(args.settings) if args.settings else {}
    epochs = {"epochs": args.epochs} if args.epochs else {}

    plans: list[tuple[str, ClassifierConfig]] = []
    if args.input_sizes:
        for size in args.input_sizes.split(","):
            value = None if size in ("none", "native") else int(size)
            label = f"{profiles[0]} @ {value or data.image_size[0]} px"
            plans.append((label, classifier_config(profiles[0], {**extra, **epochs, "input_size": value})))
    else:
        for i, profile in enumerate(profiles):
            plans.append((profile, classifier_config(profile, {**(extra if i == 0 else {}), **epochs})))

    print(
        f"{data.name} {data.image_size[0]}x{data.image_size[1]}, train/val/test {len(data.train)}/{len(data.val)}/"
        f"{len(data.test)}; {device_name()}; torch {torch.__version__}, {torch.get_num_threads()} thread(s); "
        f"seeds {seeds}",
        flush=True,
    )
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in plans}
    started = time.perf_counter()
    for seed in seeds:  # interleaved: every plan for seed 0, then for seed 1...
        for label, config in plans:
            run = train_once(data, config, seed, device)
            runs[label].append(run)
            print(
                f"  {label} seed {seed}: {run['cpu_s']:.0f} cpu s ({run['wall_s']:.0f} wall), {run['epochs_trained']} "
                f"epochs, ACC {100 * run['accuracy']:.1f} AUC {100 * run['auc']:.1f}",
                flush=True,
            )
    rows = [summary_row(label, runs[label]) for label, _ in plans]
    print()
    print_table(rows)
    if len(rows) > 1 and not args.input_sizes:
        first, second = rows[0], rows[1]
        per_epoch = first["cpu_s_per_epoch"] / second["cpu_s_per_epoch"]
        print(
            f"\nratio {first['label']} / {second['label']}: {first['cpu_s'] / second['cpu_s']:.1f}x cpu s per training "
            f"({first['wall_s'] / second['wall_s']:.1f}x wall), {per_epoch:.1f}x cpu s per epoch"
        )
    print(f"total {time.perf_counter() - started:.0f} s wall")
    if args.out:
        configs = {label: config.__dict__ for label, config in plans}
        report = {"dataset": str(args.dataset), "machine": device_name(), "torch": torch.__version__,
                  "threads": torch.get_num_threads(), "configs": configs, "runs": runs}  # fmt: skip
        args.out.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
